// Quickstart: train a small conv net with the lmcl engine on a synthetic 10-class image task and
// report the loss, held-out accuracy and throughput. Runs on the compiled dist/ (npm install).
//
// The data is generated here (class k = stripes at angle k·18° plus noise, 3×16×16), so the
// example needs no download. The training CLI on real datasets is a separate piece of lmcl.
//
//   node examples/quickstart.mjs [--epochs 4] [--threads N]
import { F, Generator, engineInfo, manualSeed, memory, nn, noGrad, optim, setNumThreads, tensor, tidy } from '../dist/src/index.js';

const argument = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? Number(process.argv[index + 1]) : fallback;
};
const epochs = argument('epochs', 4);
if (process.argv.includes('--threads')) setNumThreads(argument('threads', 2));

const classes = 10;
const size = 16;
const generator = new Generator(1234);

function makeImages(count) {
  const images = new Float32Array(count * 3 * size * size);
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n += 1) {
    const label = generator.integer(classes);
    labels[n] = label;
    const angle = (label * Math.PI) / classes;
    const frequency = 0.6 + 0.15 * generator.uniform();
    const phase = 2 * Math.PI * generator.uniform();
    for (let c = 0; c < 3; c += 1) {
      for (let y = 0; y < size; y += 1) {
        for (let x = 0; x < size; x += 1) {
          const along = x * Math.cos(angle) + y * Math.sin(angle);
          const value = Math.sin(frequency * along + phase + c) + 2.0 * generator.normal();
          images[((n * 3 + c) * size + y) * size + x] = value;
        }
      }
    }
  }
  return { images, labels };
}

manualSeed(0);
const train = makeImages(2048);
const test = makeImages(512);

const block = (input, output, stride) => [
  new nn.Conv2d(input, output, 3, { stride, padding: 1, bias: false }), new nn.BatchNorm2d(output), new nn.ReLU(),
];
const net = new nn.Sequential(
  ...block(3, 16, 1), ...block(16, 32, 2), ...block(32, 64, 2),
  new nn.AdaptiveAvgPool2d([1, 1]), new nn.Flatten(), new nn.Linear(64, classes),
);
const batch = 64;
const stepsPerEpoch = Math.floor(train.labels.length / batch);
const baseLearningRate = 0.1;
const optimizer = new optim.SGD(net.parameters(), { lr: baseLearningRate, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });

function slice(data, start, count) {
  const perImage = 3 * size * size;
  return {
    x: tensor(data.images.subarray(start * perImage, (start + count) * perImage), [count, 3, size, size]),
    y: data.labels.subarray(start, start + count),
  };
}

function evaluate() {
  net.eval();
  let correct = 0;
  noGrad(() => {
    for (let start = 0; start < test.labels.length; start += 128) {
      tidy(() => {
        const { x, y } = slice(test, start, Math.min(128, test.labels.length - start));
        const logits = net.forward(x).toFloat32Array();
        for (let n = 0; n < y.length; n += 1) {
          let best = 0;
          for (let k = 1; k < classes; k += 1) if (logits[n * classes + k] > logits[n * classes + best]) best = k;
          if (best === y[n]) correct += 1;
        }
      });
    }
  });
  net.train();
  return correct / test.labels.length;
}

const info = engineInfo();
console.log(`lmcl quickstart: ${info.simd}, ${info.threads} threads, addon ${info.path} (${info.reason})`);
console.log(`before training: test accuracy ${(100 * evaluate()).toFixed(1)}% (chance 10%)`);
for (let epoch = 0; epoch < epochs; epoch += 1) {
  optimizer.paramGroups[0].lr = baseLearningRate * 0.5 * (1 + Math.cos((Math.PI * epoch) / epochs));
  const started = performance.now();
  let lossSum = 0;
  for (let step = 0; step < stepsPerEpoch; step += 1) {
    lossSum += tidy(() => {
      const { x, y } = slice(train, step * batch, batch);
      const loss = F.crossEntropy(net.forward(x), y);
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
      return loss.item();
    });
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `epoch ${epoch + 1}/${epochs}  lr ${optimizer.paramGroups[0].lr.toFixed(4)}  loss ${(lossSum / stepsPerEpoch).toFixed(4)}  ` +
      `test accuracy ${(100 * evaluate()).toFixed(1)}%  ${((stepsPerEpoch * batch) / seconds).toFixed(0)} images/s  ` +
      `live tensors ${memory().liveTensors}`,
  );
}
