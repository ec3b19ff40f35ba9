// Crash-safe file replacement.
//
// writeFileAtomic(path, data) never leaves `path` half-written: the bytes go to a temporary file
// in the same directory (same filesystem, so rename(2) is atomic), which is fsync'ed, renamed over
// the target, and the directory is fsync'ed so the rename itself is durable. A reader (or a
// process restarted after a crash or SIGKILL) sees either the previous complete file or the new
// complete file. On any error the temporary file is removed and the error is rethrown, naming the
// target. A process killed mid-write can leave a temporary file behind: its name starts with
// `.<basename>.tmp-` and isTemporaryName() recognises it so callers can ignore or clean it.
//
// makeDirectories(dir, what) is `mkdir -p` that reports the real cause: Node's own recursive mkdir
// turns EROFS/EACCES on a missing directory into ENOENT (it stats the path to explain the error)
// and loops forever where mkdir says ENOENT below an existing directory (/proc, /sys).
//
// `fs` is imported as the module object (not destructured) so tests can inject failures with
// vi.spyOn(fs, 'fsyncSync') and friends.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

const TEMP_MARKER = '.tmp-';
/** Largest single write(2) we issue; big buffers are written in a loop of such chunks. */
const CHUNK_BYTES = 8 * 1024 * 1024;

/** The temporary name used for `target` (a dot file next to it, unique per process and call). */
export function temporaryPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}${TEMP_MARKER}${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** True for names produced by temporaryPathFor (leftovers of interrupted writes). */
export function isTemporaryName(name: string): boolean {
  return name.startsWith('.') && name.includes(TEMP_MARKER);
}

/**
 * fsync a directory so that renames/creations/unlinks in it are durable. Platforms that cannot
 * open or fsync a directory (Windows: EISDIR/EPERM/EINVAL) are skipped silently.
 */
export function fsyncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch (error) {
    if (isUnsupportedDirSync(error)) return;
    throw error;
  }
  try {
    fs.fsyncSync(fd);
  } catch (error) {
    if (!isUnsupportedDirSync(error)) throw error;
  } finally {
    fs.closeSync(fd);
  }
}

function isUnsupportedDirSync(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'EISDIR' || code === 'EPERM' || code === 'EINVAL' || code === 'ENOTSUP' || code === 'EACCES';
}

/** Writes all of `bytes` to `fd` (write(2) may write less than asked). */
function writeAll(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    const length = Math.min(CHUNK_BYTES, bytes.length - offset);
    const written = fs.writeSync(fd, bytes, offset, length);
    if (written <= 0) throw new Error(`write returned ${written}`);
    offset += written;
  }
}

/**
 * Atomically replaces `target` with `data` (UTF-8 for strings). See the file comment.
 * Throws an Error naming the target on failure; the previous file (if any) is untouched then.
 */
export function writeFileAtomic(target: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const temp = temporaryPathFor(target);
  let fd: number | undefined;
  try {
    fd = fs.openSync(temp, 'wx', 0o644);
    writeAll(fd, bytes);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, target);
  } catch (error) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error matters
      }
    }
    try {
      fs.rmSync(temp, { force: true });
    } catch {
      // best effort
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`writeFileAtomic: could not write '${target}': ${reason}`, { cause: error });
  }
  // The new content is in place; make the rename durable.
  fsyncDirectory(path.dirname(target));
}

/**
 * Creates `dir` and its missing parents, one mkdir(2) each from the deepest existing ancestor
 * down, so a failure is reported with its own errno code and the directory that could not be
 * made: `${what}: cannot create directory /ro/x: EROFS: read-only file system, mkdir '/ro/x'`.
 */
export function makeDirectories(dir: string, what: string): void {
  const missing: string[] = [];
  for (let current = path.resolve(dir); ; ) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(current, { throwIfNoEntry: false });
    } catch (error) {
      // e.g. ENOTDIR: a file where a parent directory should be.
      throw new Error(`${what}: cannot create directory ${dir}: ${(error as Error).message}`, { cause: error });
    }
    if (stat) {
      if (!stat.isDirectory()) throw new Error(`${what}: cannot create directory ${dir}: ${current} exists and is not a directory (ENOTDIR)`);
      break;
    }
    missing.push(current);
    const parent = path.dirname(current);
    if (parent === current) break; // a missing filesystem root: mkdir below reports it
    current = parent;
  }
  for (const component of missing.reverse()) {
    try {
      fs.mkdirSync(component);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Made by someone else meanwhile: fine if it is a directory.
      if (code === 'EEXIST' && fs.statSync(component, { throwIfNoEntry: false })?.isDirectory()) continue;
      const hint = code === 'ENOENT'
        ? ` (its parent ${path.dirname(component)} exists: that filesystem does not allow creating directories there, as /proc and /sys do not)`
        : '';
      throw new Error(`${what}: cannot create directory ${component}: ${(error as Error).message}${hint}`, { cause: error });
    }
  }
}
