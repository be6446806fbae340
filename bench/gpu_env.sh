# Sourced by bench/gpu_*.sh on the lent CUDA machine: the carried wheels (.whl: transformers 5.23,
# pydantic, pyzmq, ...) go to /tmp/site, nothing heavy is installed, and nothing reaches a hub.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
