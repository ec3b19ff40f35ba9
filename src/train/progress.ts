// Progress reporting: on a TTY one self-updating line (carriage return, cleared to the end);
// otherwise (pipes, files, CI) plain lines every `intervalSeconds`.
// Line: epoch e/E, batch b/B, images/s, ETA (of the run), loss, lr, running top-1 per network.

export interface ProgressState {
  epoch: number; // zero-based
  epochs: number;
  batch: number; // batches done in this epoch
  batches: number;
  imagesPerSecond: number;
  etaSeconds: number;
  loss: number;
  lr: number;
  top1: number[];
}

export interface ProgressOptions {
  /** Output stream (default process.stderr). */
  stream?: NodeJS.WriteStream | { write(text: string): boolean; isTTY?: boolean; columns?: number };
  /** Plain mode: seconds between lines (default 10). */
  intervalSeconds?: number;
  /** Force TTY (true) / plain (false); default: the stream's isTTY. */
  tty?: boolean;
  /** Silence everything. */
  quiet?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function formatProgress(state: ProgressState): string {
  const top1 = state.top1.map((value, n) => `net${n} ${value.toFixed(1)}%`).join(' ');
  return (
    `epoch ${state.epoch + 1}/${state.epochs} batch ${state.batch}/${state.batches} ` +
    `${state.imagesPerSecond.toFixed(0)} img/s ETA ${formatDuration(state.etaSeconds)} ` +
    `loss ${state.loss.toFixed(4)} lr ${state.lr.toPrecision(3)} top1 ${top1}`
  );
}

export class Progress {
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly tty: boolean;
  private readonly interval: number;
  private readonly quiet: boolean;
  private lastPrint = 0;
  private lineOpen = false;

  constructor(options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? Boolean((this.stream as { isTTY?: boolean }).isTTY);
    this.interval = (options.intervalSeconds ?? 10) * 1000;
    this.quiet = options.quiet ?? false;
  }

  /**
   * Whether update() would print now (batch: batches done in the epoch). The trainer reads the
   * step's numbers from the device only then, so a quiet run reads only at its log interval.
   */
  due(batch: number, batches: number): boolean {
    if (this.quiet) return false;
    const now = Date.now();
    if (this.tty) return now - this.lastPrint >= 100 || batch === batches;
    return now - this.lastPrint >= this.interval;
  }

  /** Called after every step; prints when due. */
  update(state: ProgressState): void {
    if (this.quiet) return;
    const now = Date.now();
    if (this.tty) {
      if (now - this.lastPrint < 100 && state.batch !== state.batches) return;
      this.lastPrint = now;
      let line = formatProgress(state);
      const columns = (this.stream as { columns?: number }).columns;
      if (columns && line.length > columns - 1) line = line.slice(0, columns - 1);
      this.stream.write(`\r${line}\x1b[K`);
      this.lineOpen = true;
    } else if (now - this.lastPrint >= this.interval) {
      this.lastPrint = now;
      this.stream.write(`${formatProgress(state)}\n`);
    }
  }

  /** Ends the self-updating line before other output. */
  clear(): void {
    if (this.lineOpen) {
      this.stream.write('\r\x1b[K');
      this.lineOpen = false;
    }
  }

  /** Prints a full line (console log line), keeping the progress line tidy. */
  log(text: string): void {
    if (this.quiet) return;
    this.clear();
    this.stream.write(`${text}\n`);
  }
}
