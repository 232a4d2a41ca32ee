D=benchmarks/results/train-step-layout-cpu-2026-12-02  # from the repository root
echo "| model | data | strategy | batch | channels_last / contiguous |"
echo "|---|---|---|---|---|"
for args in "lenet5 digits scratch 64" "lenet5 /tmp/lay/gray48 scratch 64" "resnet18 /tmp/lay/gray48 scratch 32" "efficientnet_lite0 /tmp/lay/gray48 fine-tune 32" "efficientnet_lite0 /tmp/lay/jpegs fine-tune 32" "mobilenet_v2 /tmp/lay/jpegs scratch 32" "resnet50 /tmp/lay/jpegs scratch 16" "googlenet /tmp/lay/jpegs scratch 16" "densenet121 /tmp/lay/jpegs scratch 16" "vgg11 /tmp/lay/gray48 scratch 16"; do
  timeout 600 python $D/step_layout.py $args 2>&1 | grep "^| \|Error" | tail -1
done
timeout 900 python $D/unet_layout.py 2>&1 | grep "^| \|Error"
