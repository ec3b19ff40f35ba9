// Parity cases for the layout kernels (native/src/cpu/layout.cpp, native/src/cuda/layout.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// strided_copy: a contiguous run, transposes (plain, batched, ragged 70×33 tiles, a broadcast
// source), a 4-d permute, a stepped slice, a concat into a wider destination (prefilled with random
// values: the elements outside the box must keep them) and a one-element box. index_select /
// index_add: random indices with repeats (index_add also with rows no index hits, and with k = 0).
// Shapes and strides are host arrays, as the bindings pass them; indices go through index_view. Copies are exact (tolerance
// 0); index_add sums in float32 (rtol 1e-6, atol 1e-5 for up to ~60 terms of magnitude <= 2).
#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

// ---- strided_copy ------------------------------------------------------------------------------

#define LMCL_LIST(...) {__VA_ARGS__}
#define LMCL_COPY_CASE(Name, Rank, ShapeList, SrcList, DstList, SrcOffset, DstOffset, SrcSize, DstSize, Prefill) \
  struct Name {                                                                                                  \
    static constexpr int kRank = Rank;                                                                           \
    static constexpr int64_t kShape[Rank] = ShapeList;                                                           \
    static constexpr int64_t kSrc[Rank] = SrcList;                                                               \
    static constexpr int64_t kDst[Rank] = DstList;                                                               \
    static constexpr int64_t kSrcOffset = SrcOffset, kDstOffset = DstOffset;                                     \
    static constexpr int64_t kSrcSize = SrcSize, kDstSize = DstSize;                                             \
    static constexpr bool kPrefill = Prefill;                                                                    \
  }

LMCL_COPY_CASE(CopyContiguous, 2, LMCL_LIST(7, 33), LMCL_LIST(33, 1), LMCL_LIST(33, 1), 0, 0, 231, 231, false);
LMCL_COPY_CASE(CopyTranspose, 2, LMCL_LIST(37, 45), LMCL_LIST(1, 37), LMCL_LIST(45, 1), 0, 0, 1665, 1665, false);
LMCL_COPY_CASE(CopyBatchedTranspose, 3, LMCL_LIST(3, 37, 45), LMCL_LIST(1665, 1, 37), LMCL_LIST(1665, 45, 1), 0, 0, 4995,
               4995, false);
LMCL_COPY_CASE(CopyRaggedTranspose, 2, LMCL_LIST(70, 33), LMCL_LIST(1, 70), LMCL_LIST(33, 1), 0, 0, 2310, 2310, false);
// dims [3, 4, 5, 6] of a [5, 3, 6, 4] storage.
LMCL_COPY_CASE(CopyPermute, 4, LMCL_LIST(3, 4, 5, 6), LMCL_LIST(24, 1, 72, 4), LMCL_LIST(120, 30, 6, 1), 0, 0, 360, 360,
               false);
LMCL_COPY_CASE(CopySlice, 2, LMCL_LIST(5, 6), LMCL_LIST(20, 3), LMCL_LIST(6, 1), 2, 0, 98, 30, false);
LMCL_COPY_CASE(CopyConcat, 2, LMCL_LIST(4, 5), LMCL_LIST(5, 1), LMCL_LIST(9, 1), 0, 3, 20, 35, true);
LMCL_COPY_CASE(CopyExpand, 2, LMCL_LIST(40, 24), LMCL_LIST(1, 0), LMCL_LIST(24, 1), 0, 0, 40, 960, false);
LMCL_COPY_CASE(CopyOneElement, 2, LMCL_LIST(1, 1), LMCL_LIST(3, 1), LMCL_LIST(2, 1), 5, 2, 8, 4, true);

#undef LMCL_COPY_CASE
#undef LMCL_LIST

template <typename C>
void add_copy_case(std::vector<OpCase>& list, const char* name) {
  list.push_back({name, 0, 0,
                  [](Rng& rng) {
                    HostOperand dst = C::kPrefill ? HostOperand{"dst", random_floats(rng, C::kDstSize), true}
                                                  : output("dst", C::kDstSize);
                    return std::vector<HostOperand>{input("src", random_floats(rng, C::kSrcSize)), std::move(dst)};
                  },
                  LMCL_KERNEL_CALL(strided_copy(C::kRank, C::kShape, p[0] + C::kSrcOffset, C::kSrc, p[1] + C::kDstOffset, C::kDst)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    want[1].assign(o[1].data.begin(), o[1].data.end());  // untouched elements keep their values
                    int64_t total = 1;
                    for (int d = 0; d < C::kRank; ++d) total *= C::kShape[d];
                    for (int64_t i = 0; i < total; ++i) {
                      int64_t rest = i, src = C::kSrcOffset, dst = C::kDstOffset;
                      for (int d = C::kRank - 1; d >= 0; --d) {
                        const int64_t index = rest % C::kShape[d];
                        rest /= C::kShape[d];
                        src += index * C::kSrc[d];
                        dst += index * C::kDst[d];
                      }
                      want[1][static_cast<size_t>(dst)] = o[0].data[static_cast<size_t>(src)];
                    }
                  }});
}

// ---- index_select / index_add ------------------------------------------------------------------

// The indices are drawn in make() into the case's own host array (the call passes it through
// index_view), from [0, kHit) so rows kHit..n-1 are never hit.
#define LMCL_INDEX_CASE(Name, Outer, N, Inner, K, Hit)                                      \
  struct Name {                                                                             \
    static constexpr int64_t kOuter = Outer, kN = N, kInner = Inner, kK = K, kHit = Hit;    \
    static inline std::vector<int32_t> indices;                                             \
  }

LMCL_INDEX_CASE(SelectRows, 3, 11, 37, 17, 11);
LMCL_INDEX_CASE(SelectScalars, 1, 1000, 1, 513, 1000);
LMCL_INDEX_CASE(AddRows, 3, 13, 29, 40, 10);
LMCL_INDEX_CASE(AddScalars, 2, 7, 1, 300, 7);
LMCL_INDEX_CASE(AddNothing, 2, 5, 3, 0, 5);

#undef LMCL_INDEX_CASE

template <typename C>
void draw_indices(Rng& rng) {
  std::uniform_int_distribution<int32_t> index(0, static_cast<int32_t>(C::kHit - 1));
  C::indices.resize(static_cast<size_t>(C::kK));
  for (int32_t& value : C::indices) value = index(rng);
}

template <typename C>
void add_select_case(std::vector<OpCase>& list, const char* name) {
  list.push_back({name, 0, 0,
                  [](Rng& rng) {
                    draw_indices<C>(rng);
                    return std::vector<HostOperand>{input("x", random_floats(rng, C::kOuter * C::kN * C::kInner)),
                                                    output("out", C::kOuter * C::kK * C::kInner)};
                  },
                  LMCL_KERNEL_CALL(index_select(C::kOuter, C::kN, C::kInner, p[0], C::kK, index_view(kOnCuda, C::indices), p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t b = 0; b < C::kOuter; ++b)
                      for (int64_t j = 0; j < C::kK; ++j)
                        for (int64_t t = 0; t < C::kInner; ++t)
                          want[1].push_back(o[0].data[static_cast<size_t>((b * C::kN + C::indices[j]) * C::kInner + t)]);
                  }});
}

template <typename C>
void add_index_add_case(std::vector<OpCase>& list, const char* name) {
  list.push_back({name, 1e-6, 1e-5,
                  [](Rng& rng) {
                    draw_indices<C>(rng);
                    return std::vector<HostOperand>{input("grad", random_floats(rng, C::kOuter * C::kK * C::kInner)),
                                                    output("out", C::kOuter * C::kN * C::kInner)};
                  },
                  LMCL_KERNEL_CALL(index_add(C::kOuter, C::kN, C::kInner, p[0], C::kK, index_view(kOnCuda, C::indices), p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    want[1].assign(static_cast<size_t>(C::kOuter * C::kN * C::kInner), 0.0);
                    for (int64_t b = 0; b < C::kOuter; ++b)
                      for (int64_t j = 0; j < C::kK; ++j)
                        for (int64_t t = 0; t < C::kInner; ++t)
                          want[1][static_cast<size_t>((b * C::kN + C::indices[j]) * C::kInner + t)] +=
                              o[0].data[static_cast<size_t>((b * C::kK + j) * C::kInner + t)];
                  }});
}

}  // namespace

void add_layout_cases(std::vector<OpCase>& list) {
  add_copy_case<CopyContiguous>(list, "strided_copy contiguous");
  add_copy_case<CopyTranspose>(list, "strided_copy transpose");
  add_copy_case<CopyBatchedTranspose>(list, "strided_copy batched T");
  add_copy_case<CopyRaggedTranspose>(list, "strided_copy ragged T");
  add_copy_case<CopyPermute>(list, "strided_copy permute");
  add_copy_case<CopySlice>(list, "strided_copy slice");
  add_copy_case<CopyConcat>(list, "strided_copy concat");
  add_copy_case<CopyExpand>(list, "strided_copy expand");
  add_copy_case<CopyOneElement>(list, "strided_copy one element");
  add_select_case<SelectRows>(list, "index_select rows");
  add_select_case<SelectScalars>(list, "index_select scalars");
  add_index_add_case<AddRows>(list, "index_add rows");
  add_index_add_case<AddScalars>(list, "index_add scalars");
  add_index_add_case<AddNothing>(list, "index_add k = 0");
}

}  // namespace driver
}  // namespace lmcl
