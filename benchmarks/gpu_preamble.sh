# Sourced by gpu_check.sh and gpu_train_check.sh, with DEVICE, PY and OUT set: the project
# from source (the checkout, and the Lite0 weights package copied beside it: GPU.md), the
# results folder, a refusal without CUDA, and OUT/device.txt naming what ran.
export PYTHONPATH="$PWD:$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "$(basename "$0" .sh): no CUDA device here (DEVICE=cpu runs the script as a dry run)" >&2
    exit 2
fi
"$PY" -c "import os, torch, torchvision; print('torch', torch.__version__, '| torchvision',
torchvision.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else
'cpu', '|', os.cpu_count(), 'cores')" | tee "$OUT/device.txt"
