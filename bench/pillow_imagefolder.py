# Dev-only peer for bench/imagefolder.bench.mjs: torchvision's ImageFolder transforms done with
# Pillow on the same files (torchvision itself is not installed here; its PIL path is exactly
# Image.open → convert('RGB') → crop + resize(BILINEAR) → flip → to float → normalise).
#   /usr/bin/python3 bench/pillow_imagefolder.py DIR SIZE WORKERS [--eval-dump OUT.bin COUNT]
# Prints one JSON line: images/s of a training epoch (RandomResizedCrop + flip) and of an eval
# pass (Resize(floor(SIZE/0.875)) + CenterCrop(SIZE)) with WORKERS processes (0 = this process),
# as torch's DataLoader(num_workers) would split it. --eval-dump writes the eval transform's uint8
# outputs [COUNT, 3, SIZE, SIZE] of the first COUNT files, for the bench's agreement check.
import json, math, os, random, sys, time
from multiprocessing import Pool
import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)

def files_of(root):
    out = []
    for cls in sorted(os.listdir(root)):
        for name in sorted(os.listdir(os.path.join(root, cls))):
            out.append(os.path.join(root, cls, name))
    return out

def rrc_box(width, height, rng):
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    return 0, 0, width, height

def train_item(args):
    file, size, seed = args
    rng = random.Random(seed)
    image = Image.open(file).convert('RGB')
    x, y, w, h = rrc_box(image.width, image.height, rng)
    image = image.crop((x, y, x + w, y + h)).resize((size, size), Image.BILINEAR)
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return ((np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0 - MEAN) / STD).sum()

def eval_uint8(file, size):
    image = Image.open(file).convert('RGB')
    resize = int(size / 0.875)
    w, h = image.size
    if w <= h:
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_w, new_h = int(resize * w / h), resize
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)

def eval_item(args):
    file, size = args
    return ((eval_uint8(file, size).astype(np.float32) / 255.0 - MEAN) / STD).sum()

def timed(function, jobs, workers):
    # The worker processes are started before the clock, as the DataLoader's threads are.
    if workers == 0:
        start = time.perf_counter()
        for job in jobs:
            function(job)
        return len(jobs) / (time.perf_counter() - start)
    with Pool(workers) as pool:
        pool.map(abs, range(workers))
        start = time.perf_counter()
        pool.map(function, jobs, chunksize=16)
        return len(jobs) / (time.perf_counter() - start)

if __name__ == '__main__':
    root, size, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    files = files_of(root)
    if '--eval-dump' in sys.argv:
        at = sys.argv.index('--eval-dump')
        out, count = sys.argv[at + 1], int(sys.argv[at + 2])
        np.stack([eval_uint8(file, size) for file in files[:count]]).tofile(out)
    train = timed(train_item, [(file, size, i) for i, file in enumerate(files)], workers)
    evaluation = timed(eval_item, [(file, size) for file in files], workers)
    print(json.dumps({'train_images_per_second': train, 'eval_images_per_second': evaluation, 'pillow': Image.__version__}))
