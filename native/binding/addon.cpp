// Module entry point: creates the per-environment state and registers every binding file.
#include "args.h"

namespace lmcl {
namespace binding {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->storage_constructor = Napi::Persistent(StorageHandle::define_class(env));
  env.SetInstanceData<AddonData>(data);  // deleted by Node when the environment goes away
  register_storage(env, exports);
  register_gemm(env, exports);
  register_conv2d(env, exports);
  register_batchnorm(env, exports);
  register_pool(env, exports);
  register_softmax(env, exports);
  register_elementwise(env, exports);
  register_reduce(env, exports);
  register_normalize(env, exports);
  register_layout(env, exports);
  register_sgd(env, exports);
  register_infonce(env, exports);
  register_contrastive_kl(env, exports);
  register_cohort_contrastive(env, exports);
  register_memory_bank(env, exports);
  register_peak(env, exports);
  return exports;
}

}  // namespace binding
}  // namespace lmcl

static Napi::Object InitLmcl(Napi::Env env, Napi::Object exports) { return lmcl::binding::init(env, exports); }

NODE_API_MODULE(lmcl, InitLmcl)
