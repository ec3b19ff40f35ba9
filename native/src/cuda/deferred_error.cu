// Deferred device checks: the one device-resident slot a kernel records a failed check in, and
// the host side that turns it into a Status at the next synchronisation (see common.cuh for why:
// reading each verdict back at once would drain the queue at every call).
//
// The slot is a plain cudaMalloc block, not the caching allocator's, so it never shows in the
// live-bytes counters. take_deferred_error is called by copy_device_to_host and synchronize after
// they have waited for the queue, so the slot holds every failure of the work before them; a
// copy read without a wait (begin/finish_copy_to_host) copies the slot beside its data instead
// and clears it with a queued memset when it held a failure (a second failure recorded between
// that copy and the clear is dropped: the run already stops on the first). The
// messages are the CPU kernels' for the same input, prefixed with the op (the host read that
// reports it belongs to another call) and followed by where it was found.
// Tested by the parity driver's bad-input cases (native/test/cases/pool.cpp, memory_bank.cpp),
// which expect the CPU's message at the call and the deferred one at the next synchronisation.
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "common.cuh"

namespace lmcl {
namespace cuda {
namespace detail {
namespace {

struct SlotState {
  std::mutex mutex;
  DeferredError* slot = nullptr;
};

SlotState& slot_state() {
  static SlotState* instance = new SlotState();  // never destroyed: the driver may be gone at exit
  return *instance;
}

const char* op_name(int32_t op) {
  switch (static_cast<DeferredOp>(op)) {
    case DeferredOp::kMaxPool2dBackward: return "max_pool2d_backward";
    case DeferredOp::kMaxPool2dGather: return "max_pool2d_gather";
    case DeferredOp::kMemoryUpdate: return "memory_update";
  }
  return "an op";
}

std::string describe(const DeferredError& failure) {
  switch (static_cast<DeferredCheck>(failure.check)) {
    case DeferredCheck::kArgmaxOutOfRange:
      return "argmax indices out of range for a plane of " + std::to_string(failure.first) + " elements";
    case DeferredCheck::kArgmaxOutsideWindow:
      return "an argmax index lies outside its pooling window (the CUDA backward gathers over windows; indices must "
             "come from max_pool2d_forward)";
    case DeferredCheck::kBankRowNorm:
      return "the updated bank row " + std::to_string(failure.first) + " (position " + std::to_string(failure.second) +
             ") has norm " + std::to_string(failure.value) +
             "; normalising it would write a non-finite row (the bank is unchanged)";
    case DeferredCheck::kNone: break;
  }
  return "check " + std::to_string(failure.check) + " failed";
}

}  // namespace

Status deferred_error_slot(DeferredError** slot) {
  SlotState& state = slot_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.slot) {
    void* block = nullptr;
    cudaError_t error = cudaMalloc(&block, sizeof(DeferredError));
    if (error == cudaSuccess) error = cudaMemset(block, 0, sizeof(DeferredError));
    if (error != cudaSuccess) {
      if (block) cudaFree(block);
      cudaGetLastError();
      *slot = nullptr;
      return from_cuda_error(error, "the deferred-check slot");
    }
    state.slot = static_cast<DeferredError*>(block);
  }
  *slot = state.slot;
  return Status::ok();
}

DeferredError* existing_deferred_slot() {
  SlotState& state = slot_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  return state.slot;
}

Status deferred_status(const DeferredError& failure) {
  if (failure.check == static_cast<int32_t>(DeferredCheck::kNone)) return Status::ok();
  return Status(StatusCode::kInvalidArgument, std::string(op_name(failure.op)) + ": " + describe(failure) +
                                                  " [checked on the GPU; reported at the next host read]");
}

Status clear_deferred_error() {
  DeferredError* slot = existing_deferred_slot();
  if (!slot) return Status::ok();
  return from_cuda_error(cudaMemsetAsync(slot, 0, sizeof(DeferredError), 0), "clearing the deferred-check slot");
}

Status take_deferred_error() {
  DeferredError* slot = existing_deferred_slot();
  if (!slot) return Status::ok();  // no op with a deferred check has run
  DeferredError failure{};
  LMCL_RETURN_IF_ERROR(from_cuda_error(cudaMemcpy(&failure, slot, sizeof(failure), cudaMemcpyDeviceToHost),
                                       "reading the deferred-check slot"));
  if (failure.check == static_cast<int32_t>(DeferredCheck::kNone)) return Status::ok();
  LMCL_RETURN_IF_ERROR(clear_deferred_error());
  return deferred_status(failure);
}

}  // namespace detail
}  // namespace cuda
}  // namespace lmcl
