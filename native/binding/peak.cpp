// Binding for the FMA peak measurement (native/src/cpu/peak.cpp).
#include "args.h"
#include "lmcl/peak.h"

namespace lmcl {
namespace binding {
namespace {

// measureFmaPeak(threads, minSeconds) → { gflops, seconds, iterations, threads, lanes, chains, simd }
Napi::Value measure_fma_peak_op(const Napi::CallbackInfo& info) {
  const char* name = "measureFmaPeak";
  Napi::Env env = info.Env();
  int64_t threads = get_int(info, 0, name, "threads");
  double min_seconds = get_number(info, 1, name, "minSeconds");
  if (threads < 1 || threads > 1024) throw_error(env, "measureFmaPeak: threads must be in 1..1024, got " + std::to_string(threads));
  FmaPeakResult peak;
  throw_if_error(env, cpu::measure_fma_peak(static_cast<int>(threads), min_seconds, &peak), name);
  Napi::Object result = Napi::Object::New(env);
  result.Set("gflops", Napi::Number::New(env, peak.gflops));
  result.Set("seconds", Napi::Number::New(env, peak.seconds));
  result.Set("iterations", Napi::Number::New(env, static_cast<double>(peak.iterations)));
  result.Set("threads", Napi::Number::New(env, peak.threads));
  result.Set("lanes", Napi::Number::New(env, peak.lanes));
  result.Set("chains", Napi::Number::New(env, peak.chains));
  result.Set("simd", Napi::String::New(env, peak.simd));
  return result;
}

}  // namespace

void register_peak(Napi::Env env, Napi::Object exports) {
  exports.Set("measureFmaPeak", Napi::Function::New(env, measure_fma_peak_op, "measureFmaPeak"));
}

}  // namespace binding
}  // namespace lmcl
