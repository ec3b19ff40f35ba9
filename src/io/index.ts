// File I/O for the trainer: safetensors, crash-safe writes, checkpoints, config files, SVG plots.
export { writeFileAtomic, fsyncDirectory, isTemporaryName, temporaryPathFor } from './atomic.js';
export { encodeSafetensors, decodeSafetensors, writeSafetensors, readSafetensors, defaultStoredDtype, SAFETENSORS_DTYPES } from './safetensors.js';
export type { SafetensorsEntry, SafetensorsTensors, SafetensorsContents, SafetensorsDtype, WritableDtype, EncodeOptions } from './safetensors.js';
export {
  saveCheckpoint, loadCheckpoint, latestCheckpoint, listCheckpoints, inspectCheckpoints, cleanCheckpointScratch, checkpointName,
} from './checkpoint.js';
export type {
  TensorMap, CheckpointPayload, SaveCheckpointOptions, CheckpointManifest, CheckpointInfo, LoadedCheckpoint, ScratchCleanup, DamagedCheckpoint,
} from './checkpoint.js';
export { readConfigFile } from './config_file.js';
export { plotRunsSvg, readMetricsJsonl, niceScale, formatTick } from './plot.js';
export type { PlotRun, PlotOptions } from './plot.js';
export { NAME_ALIASES, aliasesFor } from './aliases.js';
export type { NameAlias } from './aliases.js';
export { loadStateDictInto, loadStateDictContents, describeLoadProblems } from './load_state_dict.js';
export type { LoadStateDictFileOptions, LoadStateDictFileReport, ShapeMismatch } from './load_state_dict.js';
