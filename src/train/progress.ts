// Progress reporting: on a TTY one self-updating line (carriage return, cleared to the end);
// otherwise (pipes, files, CI) plain lines every `intervalSeconds`.
// Line: epoch e/E, batch b/B, images/s, ETA (of the run), loss, lr, running top-1 per network,
// fitted to the width (80 columns when not on a terminal) by dropping the less important fields.

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
  /**
   * Line width: the stream's columns on a terminal, else process.stdout's when that is one, else
   * 80 (a log file or CI page is read in a window of about that width too).
   */
  columns?: number;
}

/** The default progress width (ProgressOptions.columns). */
export function progressColumns(stream: { columns?: number; isTTY?: boolean } | undefined): number {
  if (stream?.isTTY && stream.columns) return stream.columns;
  if (process.stdout.isTTY && process.stdout.columns) return process.stdout.columns;
  return 80;
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

/**
 * The progress line, fitted to `width` columns: instead of cutting the tail (which lost the
 * accuracies first, and the loss with several networks), fields are dropped or shortened by
 * priority: lr first, then images/s, then the top-1 list is written compactly, then dropped, then
 * the ETA; epoch, batch and loss stay. Only a width too small even for those cuts the line.
 */
export function formatProgress(state: ProgressState, width = Infinity): string {
  const top1Full = `top1 ${state.top1.map((value, n) => `net${n} ${value.toFixed(1)}%`).join(' ')}`;
  const top1Compact = `top1 ${state.top1.map((value) => value.toFixed(1)).join('/')}%`;
  // In display order; `drop` ranks the fields: the highest goes first when the line is too long.
  const fields: { forms: string[]; drop: number }[] = [
    { forms: [`epoch ${state.epoch + 1}/${state.epochs}`], drop: 0 },
    { forms: [`batch ${state.batch}/${state.batches}`], drop: 0 },
    { forms: [`${state.imagesPerSecond.toFixed(0)} img/s`], drop: 4 },
    { forms: [`ETA ${formatDuration(state.etaSeconds)}`], drop: 2 },
    { forms: [`loss ${state.loss.toFixed(4)}`], drop: 0 },
    { forms: [`lr ${state.lr.toPrecision(3)}`], drop: 5 },
    { forms: state.top1.length > 0 ? [top1Full, top1Compact] : [], drop: 3 },
  ];
  const chosen = fields.map(() => 0);
  const line = (): string => fields.map((field, index) => field.forms[chosen[index]!]).filter((text) => text !== undefined).join(' ');
  for (;;) {
    const text = line();
    if (text.length <= width) return text;
    // The field with the highest drop rank still shown: its next shorter form, or (none left) gone.
    let victim = -1;
    fields.forEach((field, index) => {
      if (field.drop > 0 && chosen[index]! < field.forms.length && (victim < 0 || field.drop > fields[victim]!.drop)) victim = index;
    });
    if (victim < 0) return text.slice(0, Math.max(0, width));
    chosen[victim]! += 1;
  }
}

export class Progress {
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly tty: boolean;
  private readonly interval: number;
  private readonly quiet: boolean;
  private readonly columns: number;
  private lastPrint = 0;
  private lineOpen = false;

  constructor(options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? Boolean((this.stream as { isTTY?: boolean }).isTTY);
    this.interval = (options.intervalSeconds ?? 10) * 1000;
    this.quiet = options.quiet ?? false;
    this.columns = options.columns ?? progressColumns(this.stream as { columns?: number; isTTY?: boolean });
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
      // One column short of the width: a line that fills the last column wraps on some terminals.
      const columns = (this.stream as { columns?: number }).columns ?? this.columns;
      this.stream.write(`\r${formatProgress(state, columns - 1)}\x1b[K`);
      this.lineOpen = true;
    } else if (now - this.lastPrint >= this.interval) {
      this.lastPrint = now;
      this.stream.write(`${formatProgress(state, this.columns)}\n`);
    }
  }

  /**
   * Evaluation progress (batches of the test split done / total): on a terminal the same
   * self-updating line, elsewhere a plain line at the log interval — a long test pass is never
   * silent.
   */
  evaluating(epoch: number, epochs: number, batch: number, batches: number): void {
    if (this.quiet) return;
    const now = Date.now();
    const text = `epoch ${epoch + 1}/${epochs} evaluating: test batch ${batch}/${batches}`;
    if (this.tty) {
      if (now - this.lastPrint < 100 && batch !== batches) return;
      this.lastPrint = now;
      const columns = (this.stream as { columns?: number }).columns ?? this.columns;
      this.stream.write(`\r${text.slice(0, Math.max(0, columns - 1))}\x1b[K`);
      this.lineOpen = true;
    } else if (now - this.lastPrint >= this.interval) {
      this.lastPrint = now;
      this.stream.write(`${text}\n`);
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
