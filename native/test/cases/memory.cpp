// Parity case for host-to-device uploads (native/src/cuda/memory.cu's pinned staging ring): many
// pieces of one host array are uploaded in turn through ONE host scratch buffer that is poisoned
// with NaN right after each copy call returns, so a copy that still read its source after
// returning (an unstaged async copy) or a ring region reused while its copy was in flight shows
// up as NaN or wrong values. 600 small pieces of 1–5000 floats (odd sizes and offsets: unaligned
// regions) and two pieces of 6M floats (24 MB: larger than a ring chunk, and together more than
// the ring, so it wraps while copies are queued); ≈ 54 MB in all. The CPU side runs the same plan
// with memcpy. The reference is the source itself; the copy must be exact (rtol 0, atol 0).
#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

struct UploadPlan {
  std::vector<float> source;
  std::vector<std::pair<size_t, size_t>> pieces;  // (offset, count) in floats, back to back
};

UploadPlan& plan() {
  static UploadPlan value;
  return value;
}

template <typename Copy>
Status upload_in_pieces(float* destination, Copy copy) {
  const UploadPlan& p = plan();
  size_t largest = 0;
  for (const auto& piece : p.pieces) largest = std::max(largest, piece.second);
  std::vector<float> scratch(largest);
  for (const auto& piece : p.pieces) {
    std::memcpy(scratch.data(), p.source.data() + piece.first, piece.second * sizeof(float));
    Status status = copy(destination + piece.first, scratch.data(), piece.second * sizeof(float));
    if (!status.is_ok()) return status;
    std::fill(scratch.begin(), scratch.begin() + piece.second, std::numeric_limits<float>::quiet_NaN());
  }
  return Status::ok();
}

}  // namespace

void add_memory_cases(std::vector<OpCase>& list) {
  list.push_back({"staged_upload_pieces", 0.0, 0.0,
                  [](Rng& rng) {
                    UploadPlan& p = plan();
                    p.pieces.clear();
                    std::uniform_int_distribution<size_t> small(1, 5000);
                    size_t offset = 0;
                    for (int i = 0; i < 600; ++i) {
                      const size_t count = i == 200 || i == 400 ? size_t(6) << 20 : small(rng);
                      p.pieces.push_back({offset, count});
                      offset += count;
                    }
                    p.source = random_floats(rng, offset);
                    return std::vector<HostOperand>{output("destination", offset)};
                  },
                  [](float* const* operands) -> Status {
                    return upload_in_pieces(operands[0], [](void* to, const void* from, size_t bytes) {
                      std::memcpy(to, from, bytes);
                      return Status::ok();
                    });
                  },
                  [](float* const* operands) -> Status {
                    return upload_in_pieces(operands[0], [](void* to, const void* from, size_t bytes) {
                      return cuda::copy_host_to_device(to, from, bytes);
                    });
                  },
                  [](const std::vector<HostOperand>&, std::vector<std::vector<double>>& want) {
                    want[0].assign(plan().source.begin(), plan().source.end());
                  }});
}

}  // namespace driver
}  // namespace lmcl
