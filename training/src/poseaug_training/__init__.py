"""PoseAug training on Human3.6M: data, estimators, augmentor, evaluation, ONNX export."""
