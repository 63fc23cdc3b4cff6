"""The words of a trace, per language: one phrase per kind of step.

`_explain.steps` describes a backpropagation step as language-neutral
records (a kind and its fields: numbers and formulas already written out);
each phrase below is a format string over those fields.  A kind missing from
a language is an error, so the two texts cannot drift apart: both render the
same records, line for line, with the same numbers.

The Chinese follows the words of the tutorials the package came from:
前向传播, 代价函数, 链式法则, 反向传播, 误差信号 δ, 梯度, 学习率, 更新, 权重, 偏置.
"""

LANGS = ("en", "zh")

PHRASES = {
    "en": {
        "blank": "",
        "math": "{text}",
        "eq": "{lhs} = {value}",
        "header": ("Backpropagation, one sample: layers {layers}, hidden {activation}, "
                   "output {output}, loss {loss}"),
        "notation": ("Notation: layer l = 1…{L} computes {z_rule}, {a_rule} from "
                     "a⁽⁰⁾ = x; its error signal is {delta_rule}"),
        "arrays": "(in the arrays: {arrays})",
        "forward": "1. Forward pass: {z_rule}, {a_rule}",
        "input": "a⁽⁰⁾ = x = {x}",
        "layer_hidden": "layer {l} (hidden, {act}): W{s} = {W}, b{s} = {b}",
        "layer_output": "layer {l} (output, {act}): W{s} = {W}, b{s} = {b}",
        "loss": "2. Loss (cost function): {formula}",
        "prediction": "prediction ŷ = a{s} = {y_hat}, target y = {y}",
        "backward": ("3. Backward pass (backpropagation by the chain rule), "
                     "error signal {delta_rule}, from the output layer down:"),
        "delta_output": "layer {l} (output): {rule},  {derivative}",
        "delta_output_ce": ("layer {l} (output): {rule}  (softmax or sigmoid with "
                            "cross-entropy: the f'(z) factor cancels)"),
        "delta_output_softmax": "layer {l} (output): {rule},  {jacobian}",
        "delta_hidden": "layer {l}: {rule},  {derivative}",
        "grad_w": "gradient {rule} = {value}",
        "grad_b": "gradient {rule} = {value}",
        "update": ("4. Update with learning rate lr = {lr}: "
                   "W ← W − lr·∂L/∂W, b ← b − lr·∂L/∂b"),
        "new_w": "new weights W{s} = {W}",
        "new_b": "new biases b{s} = {b}",
    },
    "zh": {
        "blank": "",
        "math": "{text}",
        "eq": "{lhs} = {value}",
        "header": ("单个样本的反向传播：各层大小 {layers}，隐藏层激活函数 {activation}，"
                   "输出层激活函数 {output}，代价函数 {loss}"),
        "notation": ("记号：第 l 层（l = 1…{L}）由 a⁽⁰⁾ = x 起计算 {z_rule}，{a_rule}；"
                     "该层的误差信号为 {delta_rule}"),
        "arrays": "（数组中：{arrays}）",
        "forward": "1. 前向传播：{z_rule}，{a_rule}",
        "input": "a⁽⁰⁾ = x = {x}",
        "layer_hidden": "第 {l} 层（隐藏层，{act}）：权重 W{s} = {W}，偏置 b{s} = {b}",
        "layer_output": "第 {l} 层（输出层，{act}）：权重 W{s} = {W}，偏置 b{s} = {b}",
        "loss": "2. 代价函数：{formula}",
        "prediction": "预测值 ŷ = a{s} = {y_hat}，目标值 y = {y}",
        "backward": "3. 反向传播（链式法则），误差信号 {delta_rule}，从输出层逐层往回计算：",
        "delta_output": "第 {l} 层（输出层）：{rule}，  {derivative}",
        "delta_output_ce": ("第 {l} 层（输出层）：{rule}  （softmax 或 sigmoid 配交叉熵："
                            "f'(z) 因子被约去）"),
        "delta_output_softmax": "第 {l} 层（输出层）：{rule}，  {jacobian}",
        "delta_hidden": "第 {l} 层：{rule}，  {derivative}",
        "grad_w": "权重的梯度 {rule} = {value}",
        "grad_b": "偏置的梯度 {rule} = {value}",
        "update": ("4. 更新，学习率 lr = {lr}："
                   "W ← W − lr·∂L/∂W，b ← b − lr·∂L/∂b"),
        "new_w": "更新后的权重 W{s} = {W}",
        "new_b": "更新后的偏置 b{s} = {b}",
    },
}

# Words inside the summary of a large array: <shape (100, 784), norm ..., ...>.
SUMMARY = {
    "en": "<shape {shape}, norm {norm}, mean {mean}, largest |entries| {largest}>",
    "zh": "<形状 {shape}，范数 {norm}，均值 {mean}，绝对值最大的元素 {largest}>",
}
