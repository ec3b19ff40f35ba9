// Profiler (`profiler` namespace of the public API): per-op kernel timing, reports, the FMA peak.
export {
  startProfiling, stopProfiling, pauseProfiling, resumeProfiling, profileStep, profileRecords, profilingStarted, withProfilePhase,
} from './profiler.js';
export type { ProfilePhase, ProfileRecords, KernelRecord, BackwardNodeRecord, ModuleRecord } from './profiler.js';
export { buildReport, formatReport, reportJson } from './report.js';
export type { ProfileReport, KernelRow, NamedTimeRow, ReportOptions } from './report.js';
export { attachModuleTimers } from './modules.js';
export { callCost, conv2dMacs, hasCostModel, UNMODELLED_OPS } from './costs.js';
export type { CallCost, CostKind } from './costs.js';
export { measureFmaPeak } from './peak.js';
export type { FmaPeak, FmaPeakOptions } from './peak.js';
