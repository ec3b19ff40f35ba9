// Image-folder batches, decoded and resized per batch (in the worker threads, or inline with
// workers 0): torchvision's ImageFolder transforms on PIL images, reproduced.
//
//   train: RandomResizedCrop(size, scale (0.08, 1), ratio (3/4, 4/3)) → RandomHorizontalFlip →
//          ToTensor → Normalize;
//   eval:  Resize(floor(size / 0.875)) (shorter side; timm's crop_pct 0.875, 256 for 224) →
//          CenterCrop(size) → ToTensor → Normalize.
// Resampling is Pillow's BILINEAR with antialiasing (ImagingResample): separable, a triangle
// filter whose support grows with the downscale factor, horizontal pass first, each pass rounded
// to uint8; Pillow works in 22-bit fixed point, we in float64, so a value may differ by one step.
// Crops resample inside the crop only (Pillow crops first, then resizes the crop).
//
// Every function here is self-contained (no free variables, no imports): the worker threads run
// them from their source text (see workers.ts), so inline and worker batches are the same bits.
// The random numbers of a batch (40 uniforms per image for RandomResizedCrop's ten attempts, one
// flip bit) are drawn on the main thread from (seed, epoch, batch) — see drawImageParams in
// augment.ts — and turned into a crop box here, once the image's size is known.
// Tested against a direct float64 2-D evaluation of the same filter (test/data/image_pipeline.test.ts)
// and, dev-only, against Pillow on the same files (bench/imagefolder.bench.mjs --pillow).

/** A decoded image: 4 bytes (RGBA) or 3 bytes (RGB) per pixel, row-major. */
export interface DecodedImage {
  width: number;
  height: number;
  /** Bytes per pixel of `data`: 4 (RGBA) or 3 (RGB). */
  stride: number;
  data: Uint8Array;
}

/** The pure-JS decoders (pngjs, jpeg-js, zlib's inflate) handed to decodeImageBytes. */
export interface JsDecoders {
  png: { PNG: { sync: { read(buffer: Uint8Array): { width: number; height: number; data: Uint8Array } } } };
  jpeg: { decode(data: Uint8Array, options: Record<string, unknown>): { width: number; height: number; data: Uint8Array } };
  inflateSync(data: Uint8Array, options: { maxOutputLength: number }): Uint8Array;
  maxPixels: number;
}

/** Uniforms drawn per image for RandomResizedCrop: ten attempts × (area, log-ratio, top, left). */
export const CROP_UNIFORMS = 40;

/**
 * Decodes PNG (pngjs) or JPEG (jpeg-js) bytes to RGBA. A PNG's header is checked before pngjs
 * allocates for it: its pixel count against maxPixels, and its IDAT stream (inflated with a bound)
 * against the exact length the header implies. Errors name the file.
 */
export function decodeImageBytes(data: Uint8Array, file: string, decoders: JsDecoders): DecodedImage {
  const what = 'imagefolder';
  const isPng = data.length >= 8 && data[0] === 0x89 && data[1] === 0x50 && data[2] === 0x4e && data[3] === 0x47;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  function scanlineBytes(width: number, height: number, bitsPerPixel: number): number {
    return width > 0 && height > 0 ? height * (1 + Math.ceil((width * bitsPerPixel) / 8)) : 0;
  }
  function checkPng(): void {
    let header: { width: number; height: number; bitDepth: number; colorType: number; interlace: number } | null = null;
    const idat: Uint8Array[] = [];
    for (let offset = 8; offset + 8 <= data.length; ) {
      const length = view.getUint32(offset);
      const type = String.fromCharCode(data[offset + 4]!, data[offset + 5]!, data[offset + 6]!, data[offset + 7]!);
      const body = offset + 8;
      if (body + length > data.length) break;
      if (type === 'IHDR' && length >= 13) {
        header = { width: view.getUint32(body), height: view.getUint32(body + 4), bitDepth: data[body + 8]!, colorType: data[body + 9]!, interlace: data[body + 12]! };
      } else if (type === 'IDAT') {
        idat.push(data.subarray(body, body + length));
      } else if (type === 'IEND') {
        break;
      }
      offset = body + length + 4; // + CRC
    }
    if (!header) return; // a file whose chunks cannot be walked is left to pngjs, which reports it
    const { width, height, bitDepth, colorType, interlace } = header;
    const pixels = width * height;
    if (pixels > decoders.maxPixels) {
      throw new Error(
        `${what}: ${file}: the PNG header says ${width}×${height} (${pixels.toLocaleString('en-US')} pixels), ` +
          `more than the ${decoders.maxPixels.toLocaleString('en-US')}-pixel limit (Pillow's decompression-bomb limit)`,
      );
    }
    // Channels per PNG colour type (grey, -, RGB, palette, grey+alpha, -, RGBA).
    const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType];
    if (channels === undefined) return; // pngjs names the bad colour type
    const bitsPerPixel = channels * bitDepth;
    let expected = 0;
    if (interlace === 1) {
      // Adam7: seven reduced images, each with its own scanlines (x0, y0, dx, dy per pass).
      const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
      for (const [x0, y0, dx, dy] of passes) expected += scanlineBytes(Math.ceil((width - x0!) / dx!), Math.ceil((height - y0!) / dy!), bitsPerPixel);
    } else {
      expected = scanlineBytes(width, height, bitsPerPixel);
    }
    const total = idat.reduce((sum, part) => sum + part.length, 0);
    const joined = new Uint8Array(total);
    let at = 0;
    for (const part of idat) {
      joined.set(part, at);
      at += part.length;
    }
    let inflated: number;
    try {
      inflated = decoders.inflateSync(joined, { maxOutputLength: Math.max(expected, 1) }).length;
    } catch (error) {
      const code = (error as { code?: string }).code;
      const reason = code === 'ERR_BUFFER_TOO_LARGE' ? `it inflates to more than the ${expected} bytes a ${width}×${height} image needs` : (error as Error).message;
      throw new Error(`${what}: ${file}: the PNG image data is corrupt or truncated: ${reason}`);
    }
    if (inflated !== expected) {
      throw new Error(
        `${what}: ${file}: the PNG is truncated or corrupt: its header says ${width}×${height}, which needs ${expected} bytes of ` +
          `image data, but the data inflates to ${inflated} bytes`,
      );
    }
  }
  if (isPng) checkPng();
  try {
    if (isPng) {
      const image = decoders.png.PNG.sync.read(data);
      return { width: image.width, height: image.height, stride: 4, data: new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.length) };
    }
    // jpeg-js checks the frame size against maxResolutionInMP before it allocates.
    const image = decoders.jpeg.decode(data, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024, maxResolutionInMP: decoders.maxPixels / 1e6 });
    return { width: image.width, height: image.height, stride: 4, data: image.data };
  } catch (error) {
    throw new Error(`${what}: cannot decode ${file} (corrupt or truncated image?): ${(error as Error).message}`);
  }
}

/**
 * Where one image's output comes from, in torchvision's terms: the crop [x, x+w) × [y, y+h) of
 * the source is resized to scaledWidth × scaledHeight, and the size×size window at (left, top)
 * of that resized crop is the output. RandomResizedCrop: the crop is random, scaled = size, window
 * at 0. Eval: the crop is the whole image, scaled = the Resize output, the window centred.
 */
export interface ImageWindow {
  x: number;
  y: number;
  w: number;
  h: number;
  scaledWidth: number;
  scaledHeight: number;
  left: number;
  top: number;
}

/** Python's round(): halves to even (torchvision computes crop sizes and offsets with it). */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * torchvision's RandomResizedCrop.get_params (scale (0.08, 1), ratio (3/4, 4/3)) with the random
 * numbers given: uniforms[offset + 4t ... + 4t + 3] for attempt t (area, log aspect ratio, top,
 * left), ten attempts, then the fallback (the whole image, clamped to the ratio range, centred).
 */
export function randomResizedCropWindow(width: number, height: number, size: number, uniforms: Float64Array, offset: number): ImageWindow {
  const area = width * height;
  const minScale = 0.08;
  const maxScale = 1;
  const minLogRatio = Math.log(3 / 4);
  const maxLogRatio = Math.log(4 / 3);
  for (let attempt = 0; attempt < 10; attempt += 1) {
    const u = offset + 4 * attempt;
    const targetArea = area * (minScale + uniforms[u]! * (maxScale - minScale));
    const aspect = Math.exp(minLogRatio + uniforms[u + 1]! * (maxLogRatio - minLogRatio));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const y = Math.min(Math.floor(uniforms[u + 2]! * (height - h + 1)), height - h);
      const x = Math.min(Math.floor(uniforms[u + 3]! * (width - w + 1)), width - w);
      return { x, y, w, h, scaledWidth: size, scaledHeight: size, left: 0, top: 0 };
    }
  }
  const ratio = width / height;
  let w = width;
  let h = height;
  if (ratio < 3 / 4) {
    h = roundHalfEven(w / (3 / 4));
  } else if (ratio > 4 / 3) {
    w = roundHalfEven(h * (4 / 3));
  }
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), w, h, scaledWidth: size, scaledHeight: size, left: 0, top: 0 };
}

/**
 * Eval: Resize(floor(size / 0.875)) on the shorter side (the longer one int(resize · long / short),
 * as torchvision computes it), then CenterCrop(size) (offsets int(round((scaled − size) / 2))).
 */
export function centerCropWindow(width: number, height: number, size: number): ImageWindow {
  const resize = Math.floor(size / 0.875);
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const scaledLong = Math.floor((resize * long) / short);
  const scaledWidth = width <= height ? resize : scaledLong;
  const scaledHeight = width <= height ? scaledLong : resize;
  return {
    x: 0, y: 0, w: width, h: height, scaledWidth, scaledHeight,
    left: roundHalfEven((scaledWidth - size) / 2), top: roundHalfEven((scaledHeight - size) / 2),
  };
}

/**
 * Resamples `window` of `image` to size×size (Pillow's antialiased BILINEAR), flips it when asked,
 * and writes it normalised (lut[c·256 + v]) as 3 planes into out[offset ...].
 */
export function resampleWindow(image: DecodedImage, window: ImageWindow, size: number, flip: boolean, lut: Float32Array, out: Float32Array, offset: number): void {
  // Per output index along one axis: the first source index, the tap count and the weights
  // (maxTaps per index), as Pillow's precompute_coeffs for the triangle filter.
  function axis(cropStart: number, cropLength: number, scaled: number, windowStart: number) {
    const scale = cropLength / scaled;
    const filterScale = Math.max(scale, 1);
    const support = filterScale; // the bilinear filter's support is 1
    const maxTaps = Math.ceil(support) * 2 + 1;
    const first = new Int32Array(size);
    const taps = new Int32Array(size);
    const weights = new Float64Array(size * maxTaps);
    for (let k = 0; k < size; k += 1) {
      const center = (windowStart + k + 0.5) * scale;
      const low = Math.max(Math.trunc(center - support + 0.5), 0);
      const high = Math.min(Math.trunc(center + support + 0.5), cropLength);
      let total = 0;
      for (let t = 0; t < high - low; t += 1) {
        const distance = Math.abs((low + t - center + 0.5) / filterScale);
        const weight = distance < 1 ? 1 - distance : 0;
        weights[k * maxTaps + t] = weight;
        total += weight;
      }
      if (total !== 0) for (let t = 0; t < high - low; t += 1) weights[k * maxTaps + t]! /= total;
      first[k] = cropStart + low;
      taps[k] = high - low;
    }
    return { first, taps, weights, maxTaps };
  }
  const { width, stride, data } = image;
  const columns = axis(window.x, window.w, window.scaledWidth, window.left);
  const rows = axis(window.y, window.h, window.scaledHeight, window.top);
  // Horizontal pass over the source rows the vertical pass reads, rounded to uint8 like Pillow.
  let rowLow = Number.MAX_SAFE_INTEGER;
  let rowHigh = 0;
  for (let k = 0; k < size; k += 1) {
    rowLow = Math.min(rowLow, rows.first[k]!);
    rowHigh = Math.max(rowHigh, rows.first[k]! + rows.taps[k]!);
  }
  const rowCount = Math.max(rowHigh - rowLow, 0);
  const horizontal = new Uint8Array(rowCount * size * 3);
  for (let r = 0; r < rowCount; r += 1) {
    const source = (rowLow + r) * width * stride;
    for (let k = 0; k < size; k += 1) {
      const base = k * columns.maxTaps;
      const start = columns.first[k]!;
      let red = 0;
      let green = 0;
      let blue = 0;
      for (let t = 0; t < columns.taps[k]!; t += 1) {
        const weight = columns.weights[base + t]!;
        const pixel = source + (start + t) * stride;
        red += data[pixel]! * weight;
        green += data[pixel + 1]! * weight;
        blue += data[pixel + 2]! * weight;
      }
      const target = (r * size + k) * 3;
      horizontal[target] = Math.min(Math.max(Math.floor(red + 0.5), 0), 255);
      horizontal[target + 1] = Math.min(Math.max(Math.floor(green + 0.5), 0), 255);
      horizontal[target + 2] = Math.min(Math.max(Math.floor(blue + 0.5), 0), 255);
    }
  }
  const plane = size * size;
  for (let k = 0; k < size; k += 1) {
    const base = k * rows.maxTaps;
    const start = rows.first[k]! - rowLow;
    for (let x = 0; x < size; x += 1) {
      let red = 0;
      let green = 0;
      let blue = 0;
      for (let t = 0; t < rows.taps[k]!; t += 1) {
        const weight = rows.weights[base + t]!;
        const pixel = ((start + t) * size + x) * 3;
        red += horizontal[pixel]! * weight;
        green += horizontal[pixel + 1]! * weight;
        blue += horizontal[pixel + 2]! * weight;
      }
      const column = flip ? size - 1 - x : x;
      const target = offset + k * size + column;
      out[target] = lut[Math.min(Math.max(Math.floor(red + 0.5), 0), 255)]!;
      out[target + plane] = lut[256 + Math.min(Math.max(Math.floor(green + 0.5), 0), 255)]!;
      out[target + 2 * plane] = lut[512 + Math.min(Math.max(Math.floor(blue + 0.5), 0), 255)]!;
    }
  }
}

/**
 * One image-folder item into out (item `item` of the batch): RandomResizedCrop from its uniforms
 * (uniforms non-null: training) or Resize + CenterCrop (null: eval), then flip and normalise.
 */
export function prepareImageItem(image: DecodedImage, item: number, uniforms: Float64Array | null, flips: Uint8Array | null, size: number, lut: Float32Array, out: Float32Array): void {
  const window = uniforms ? randomResizedCropWindow(image.width, image.height, size, uniforms, item * 40 /* CROP_UNIFORMS */) : centerCropWindow(image.width, image.height, size);
  resampleWindow(image, window, size, flips !== null && flips[item] === 1, lut, out, item * 3 * size * size);
}

/** The sources the worker threads evaluate (every function above, which call one another by name). */
export function imagePipelineSource(): string {
  return [decodeImageBytes, roundHalfEven, randomResizedCropWindow, centerCropWindow, resampleWindow, prepareImageItem].map((fn) => fn.toString()).join('\n');
}

/** Who decodes image-folder files: the pure-JS decoders, or sharp (libvips) in the workers. */
export type ImageDecoderName = 'js' | 'sharp';
