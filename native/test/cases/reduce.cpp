// Parity cases for the reduce kernels (native/src/cpu/reduce.cpp, native/src/cuda/reduce.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// Each layout class the kernels tell apart has a case: row sums (a warp, a block, a split full
// reduction), column sums (plain and split along the reduced axis), batch-norm's [R, C, R], an
// interleaved kept/reduced pattern with an extent-1 axis, tiny rows, nothing to reduce, an empty
// input and rank 0. Inputs in [-2, 2]; float32 sums of N such terms carry ~sqrt(N)·eps·|partial|
// rounding, so atol grows with N (stated per case), sized from 300 random seeds (Xeon VM,
// 2026-12-03) so that the worst error stays <= ~25% of the tolerance (the earlier atols let
// 'columns long' reach 83% and fail in one CI run in a few hundred).
#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

// A case: static shape and reduce flags (host arrays, as the binding passes them).
#define LMCL_SUM_CASE(Name, Rank, ShapeList, ReduceList)                        \
  struct Name {                                                                 \
    static constexpr int kRank = Rank;                                          \
    static constexpr int64_t kShape[Rank > 0 ? Rank : 1] = ShapeList;           \
    static constexpr uint8_t kReduce[Rank > 0 ? Rank : 1] = ReduceList;         \
  }
#define LMCL_LIST(...) {__VA_ARGS__}

LMCL_SUM_CASE(RowsWarp, 2, LMCL_LIST(37, 1000), LMCL_LIST(0, 1));
LMCL_SUM_CASE(RowsBlock, 2, LMCL_LIST(5, 5001), LMCL_LIST(0, 1));
LMCL_SUM_CASE(FullSplit, 1, LMCL_LIST(100003), LMCL_LIST(1));
LMCL_SUM_CASE(FullWithUnit, 3, LMCL_LIST(3, 1, 50001), LMCL_LIST(1, 1, 1));
LMCL_SUM_CASE(ColumnsSplit, 2, LMCL_LIST(3000, 5), LMCL_LIST(1, 0));
LMCL_SUM_CASE(ColumnsLong, 2, LMCL_LIST(20000, 3), LMCL_LIST(1, 0));
LMCL_SUM_CASE(Middle, 3, LMCL_LIST(3, 129, 67), LMCL_LIST(0, 1, 0));
LMCL_SUM_CASE(MiddleSplit, 3, LMCL_LIST(2, 3000, 40), LMCL_LIST(0, 1, 0));
LMCL_SUM_CASE(BatchNorm, 3, LMCL_LIST(6, 7, 50), LMCL_LIST(1, 0, 1));
LMCL_SUM_CASE(Interleaved, 6, LMCL_LIST(3, 1, 4, 5, 2, 3), LMCL_LIST(0, 1, 1, 0, 1, 0));
LMCL_SUM_CASE(TinyRows, 2, LMCL_LIST(2000, 3), LMCL_LIST(0, 1));
LMCL_SUM_CASE(Nothing, 3, LMCL_LIST(4, 1, 5), LMCL_LIST(0, 1, 0));
LMCL_SUM_CASE(EmptyInput, 2, LMCL_LIST(0, 5), LMCL_LIST(1, 0));
LMCL_SUM_CASE(RankZero, 0, LMCL_LIST(1), LMCL_LIST(0));

#undef LMCL_LIST
#undef LMCL_SUM_CASE

template <typename C>
int64_t element_count() {
  int64_t count = 1;
  for (int d = 0; d < C::kRank; ++d) count *= C::kShape[d];
  return count;
}
template <typename C>
int64_t kept_count() {
  int64_t count = 1;
  for (int d = 0; d < C::kRank; ++d)
    if (!C::kReduce[d]) count *= C::kShape[d];
  return count;
}

template <typename C>
void add_sum_case(std::vector<OpCase>& list, const char* name, double atol) {
  list.push_back({name, 1e-5, atol,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("x", random_floats(rng, static_cast<size_t>(element_count<C>()))),
                                                    output("out", static_cast<size_t>(kept_count<C>()))};
                  },
                  LMCL_KERNEL_CALL(sum_axes(C::kRank, C::kShape, C::kReduce, p[0], p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    // Every x element adds into the output named by its kept coordinates (row-major).
                    want[1].assign(static_cast<size_t>(kept_count<C>()), 0.0);
                    const int64_t total = element_count<C>();
                    for (int64_t i = 0; i < total; ++i) {
                      int64_t rest = i, out_index = 0, out_stride = 1;
                      for (int d = C::kRank - 1; d >= 0; --d) {
                        const int64_t index = rest % C::kShape[d];
                        rest /= C::kShape[d];
                        if (!C::kReduce[d]) {
                          out_index += index * out_stride;
                          out_stride *= C::kShape[d];
                        }
                      }
                      want[1][static_cast<size_t>(out_index)] += o[0].data[static_cast<size_t>(i)];
                    }
                  }});
}

}  // namespace

void add_reduce_cases(std::vector<OpCase>& list) {
  add_sum_case<RowsWarp>(list, "sum_axes rows warp", 1e-4);
  add_sum_case<RowsBlock>(list, "sum_axes rows block", 3e-4);
  add_sum_case<FullSplit>(list, "sum_axes full split", 5e-3);
  add_sum_case<FullWithUnit>(list, "sum_axes full unit axis", 6e-3);
  add_sum_case<ColumnsSplit>(list, "sum_axes columns split", 1e-3);
  add_sum_case<ColumnsLong>(list, "sum_axes columns long", 5e-3);
  add_sum_case<Middle>(list, "sum_axes middle", 1e-4);
  add_sum_case<MiddleSplit>(list, "sum_axes middle split", 1e-3);
  add_sum_case<BatchNorm>(list, "sum_axes batchnorm", 1e-4);
  add_sum_case<Interleaved>(list, "sum_axes interleaved", 1e-5);
  add_sum_case<TinyRows>(list, "sum_axes tiny rows", 1e-6);
  add_sum_case<Nothing>(list, "sum_axes nothing", 0);
  add_sum_case<EmptyInput>(list, "sum_axes empty input", 0);
  add_sum_case<RankZero>(list, "sum_axes rank 0", 0);
}

}  // namespace driver
}  // namespace lmcl
