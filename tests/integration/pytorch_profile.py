#!/usr/bin/env python3
"""pytorch_profile.py OUTDIR [ITERATIONS] - profile a small inference
pipeline with the PyTorch profiler; check_pytorch.py compares what it
writes with `stageprof report`.

A torchvision ResNet-18 (random weights, nothing downloaded) classifies
64x64 pictures in batches of two, on the CPU, for ITERATIONS (default 4)
iterations after one unprofiled warm-up. Each iteration runs four stages
under torch.profiler.record_function:

  data         the next batch from a DataLoader
  preprocess   normalisation
  forward      the model, without autograd
  postprocess  softmax, top 5, to Python lists

The profile (CPU activity, memory too) goes to

  OUTDIR/trace.json          prof.export_chrome_trace()
  OUTDIR/key_averages.json   {"torch": version, "kineto": bool,
                              "iterations": N, "stages": [...],
                              "rows": [one per prof.key_averages() row:
                                       name, count, cpu_time_total,
                                       self_cpu_time_total (µs, as torch
                                       has them), is_async, device_type]}

Exits 77 when torch or torchvision cannot be imported, saying why.
"""
import json
import os
import sys

STAGES = ("data", "preprocess", "forward", "postprocess")


def main():
    out = sys.argv[1]
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    try:
        import torch
        import torchvision
        from torch.profiler import ProfilerActivity, profile, record_function
    except Exception as e:  # ImportError, or a broken installation
        print("cannot import torch and torchvision with %s: %s"
              % (sys.executable, e))
        sys.exit(77)

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    pictures = torch.rand(2 * iterations, 3, 64, 64)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(pictures), batch_size=2)
    with torch.no_grad():
        model(pictures[:2])  # warm-up: first-call setup stays unprofiled

    answers = []
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        batches = iter(loader)
        for _ in range(iterations):
            with record_function("data"):
                (x,) = next(batches)
            with record_function("preprocess"):
                x = (x - 0.5) / 0.25
            with record_function("forward"):
                with torch.no_grad():
                    y = model(x)
            with record_function("postprocess"):
                answers.append(torch.softmax(y, 1).topk(5).indices.tolist())

    os.makedirs(out, exist_ok=True)
    prof.export_chrome_trace(os.path.join(out, "trace.json"))
    rows = [{"name": e.key, "count": e.count,
             "cpu_time_total": e.cpu_time_total,
             "self_cpu_time_total": e.self_cpu_time_total,
             "is_async": bool(e.is_async),
             "device_type": str(e.device_type)}
            for e in prof.key_averages()]
    with open(os.path.join(out, "key_averages.json"), "w") as f:
        json.dump({"torch": torch.__version__,
                   "kineto": bool(torch.autograd.kineto_available()),
                   "iterations": iterations, "stages": list(STAGES),
                   "rows": rows}, f, indent=1)
    print("%d iterations, %d answers, %d key_averages rows"
          % (iterations, len(answers), len(rows)))


if __name__ == "__main__":
    main()
