#!/usr/bin/env python3
"""Generate the stand-in offer ranking model and its expected-output fixture.

The model is a logistic scorer: score = sigmoid(features @ W + b), input
`features` float32 [N, 6], output `score` float32 [N, 1]. The feature order is
fixed by `refresh-service/src/pipeline/rank.rs` (see the README, "Ranking model"):

    0 discount      discount fraction, 0..1 (0 when there is no original price)
    1 price         ln(1 + price) / ln(1 + 1000), cheaper offers rank higher
    2 urgency       exp(-days_to_expiry / 7), 0 for open-ended offers
    3 freshness     exp(-days_since_update / 14)
    4 has_image     1 when the offer has an image, else 0
    5 category      category prior, 0..1

Replace `offer_ranker.onnx` with a trained model of the same signature; rerun
this script only to regenerate the stand-in.

Usage: python3 make_offer_ranker.py   (needs `pip install onnx onnxruntime numpy`)
"""
import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = pathlib.Path(__file__).resolve().parent
WEIGHTS = np.array([[2.5], [-0.6], [0.7], [0.8], [0.4], [1.2]], dtype=np.float32)
BIAS = np.array([-1.6], dtype=np.float32)


def build() -> onnx.ModelProto:
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 6])
    score = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["logits_raw"]),
        helper.make_node("Add", ["logits_raw", "B"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "offer_ranker",
        [features],
        [score],
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="ofertasws")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    model = build()
    path = HERE / "offer_ranker.onnx"
    onnx.save(model, path)

    import onnxruntime as ort

    inputs = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [0.375, 0.36, 0.0, 1.0, 1.0, 0.7],
            [0.5, 0.2, 0.8, 0.5, 0.0, 0.4],
            [0.1, 0.9, 0.05, 0.01, 1.0, 0.9],
        ],
        dtype=np.float32,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (scores,) = session.run(["score"], {"features": inputs})
    fixture = {"inputs": inputs.tolist(), "scores": scores[:, 0].tolist()}
    (HERE / "offer_ranker.expected.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and offer_ranker.expected.json")


if __name__ == "__main__":
    main()
