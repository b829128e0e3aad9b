"""facenet-pytorch's MTCNN pipeline, with its three nets on OpenVINO (or ONNX Runtime) and every R-Net and O-Net
candidate of a batch cropped and resized at once.

facenet-pytorch crops and resizes each candidate box with its own `interpolate(mode="area")` call, which takes half
of MTCNN's time. Area resampling of a box is a mean over rectangles, so one integral image per batch gives every
candidate's resampled pixels in four gathers: the same sums, divided as PyTorch divides them; P-Net's pyramid levels
come from the same integral image. No step wakes PyTorch's thread pool, so two aligner workers can share the cores
(docs/alignment.md). The weights, scales, thresholds, NMS and box regression are facenet-pytorch's own.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable

import cv2
import numpy as np
import onnxruntime as ort
import torch
from facenet_pytorch.models.utils.detect_face import (
    batched_nms_numpy,
    bbreg,
    generateBoundingBox,
    pad,
    rerec,
)
from torchvision.ops.boxes import batched_nms

# One image's detections: boxes (N, 5) as x1, y1, x2, y2, probability, and landmarks (N, 5, 2).
Detections = tuple[np.ndarray, np.ndarray]
Net = Callable[[np.ndarray], tuple[torch.Tensor, ...]]


def _onnx(net: torch.nn.Module, size: int | None) -> bytes:
    """The module as ONNX, in memory; size None: any height and width (P-Net)."""
    example = torch.zeros(1, 3, size or 12, size or 12)
    axes = {0: "n"} if size else {0: "n", 2: "h", 3: "w"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net.eval(), example, buffer, input_names=["x"], dynamic_axes={"x": axes}, opset_version=17, dynamo=False
        )
    return buffer.getvalue()


def onnx_net(net: torch.nn.Module, size: int | None, threads: int) -> Net:
    """The module run by ONNX Runtime on `threads` threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(_onnx(net, size), options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(out) for out in session.run(None, {"x": x}))

    return run


def openvino_net(net: torch.nn.Module, size: int | None, threads: int, streams: int) -> Net:
    """The module compiled by OpenVINO in FP32 (not bf16 where the host has it: the crops must stay at parity), with
    one stream of `threads` unpinned threads per aligner worker (at most one per core): requests on one stream run
    one at a time."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads * streams, "NUM_STREAMS": streams}
    compiled = core.compile_model(core.read_model(_onnx(net, size)), "CPU", config | {"ENABLE_CPU_PINNING": False})
    local = threading.local()

    def run(x: np.ndarray) -> tuple[torch.Tensor, ...]:
        if not hasattr(local, "request"):
            local.request = compiled.create_infer_request()
        outputs = local.request.infer({0: x}, share_inputs=True)  # a copy into the request's tensor deadlocked once
        return tuple(torch.from_numpy(out.copy()) for out in outputs.values())

    return run


def _pyramid(h: int, w: int, min_face_size: int, factor: float) -> list[float]:
    """The scales at which P-Net's 12-pixel window sees faces from min_face_size up to the whole image."""
    m = 12.0 / min_face_size
    minl = min(h, w) * m
    scales, scale = [], m
    while minl >= 12:
        scales.append(scale)
        scale *= factor
        minl *= factor
    return scales


def integral_image(imgs: np.ndarray) -> np.ndarray:
    """Sums over rows < r and columns < c of each uint8 image (B, H, W, 3), as (B, H+1, W+1, 3); exact integers
    (int32 gathers faster; float64 holds larger sums exactly). OpenCV's integral is 5x numpy's two cumsums."""
    n, h, w, c = imgs.shape
    if h * w * 255 < 2**31:
        return np.stack([cv2.integral(img, sdepth=cv2.CV_32S) for img in imgs])
    return np.stack([cv2.integral(img, sdepth=cv2.CV_64F) for img in imgs]).astype(np.int64)


def _area_bounds(start: np.ndarray, length: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """adaptive_avg_pool2d's source range [lo, hi) of each of `size` outputs over `length` pixels from `start`."""
    steps = np.arange(size)
    lo = start[:, None] + (steps * length[:, None]) // size
    hi = start[:, None] + ((steps + 1) * length[:, None] + size - 1) // size
    return lo, hi


def area_crops(integral: np.ndarray, image_inds: np.ndarray, boxes: tuple[np.ndarray, ...], size: int) -> np.ndarray:
    """interpolate(img[:, y-1:ey, x-1:ex], (size, size), mode="area") for every box at once, as float32 (K, 3, size,
    size), from the batch's integral image: each output pixel is the exact integer sum of its source rectangle,
    divided by the rectangle's height and then its width, as adaptive_avg_pool2d divides it."""
    y, ey, x, ex = (v.astype(np.int64) for v in boxes)
    _, rows, cols, _ = integral.shape
    r0, r1 = _area_bounds(y - 1, ey - y + 1, size)
    c0, c1 = _area_bounds(x - 1, ex - x + 1, size)
    flat = integral.reshape(-1, integral.shape[3])
    base = image_inds.astype(np.int64)[:, None] * rows
    top, bottom = ((base + r) * cols for r in (r0, r1))

    def at(row: np.ndarray, col: np.ndarray) -> np.ndarray:
        return np.take(flat, row[:, :, None] + col[:, None, :], axis=0)  # (K, size, size, 3)

    total = at(bottom, c1) - at(top, c1) - at(bottom, c0) + at(top, c0)
    kh, kw = (r1 - r0).astype(np.float32), (c1 - c0).astype(np.float32)
    out = total.astype(np.float32) / kh[:, :, None, None] / kw[:, None, :, None]
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def area_resize(integral: np.ndarray, height: int, width: int) -> np.ndarray:
    """interpolate(batch, (height, width), mode="area") of the whole images, bit for bit, as float32 (B, 3, H, W):
    P-Net's pyramid from the integral image, without PyTorch's thread pool in every aligner worker."""
    _, rows, cols, _ = integral.shape
    r0, r1 = (v[0] for v in _area_bounds(np.zeros(1, np.int64), np.array([rows - 1]), height))
    c0, c1 = (v[0] for v in _area_bounds(np.zeros(1, np.int64), np.array([cols - 1]), width))
    strips = np.take(integral, r1, axis=1) - np.take(integral, r0, axis=1)  # np.take: 3x faster than indexing
    total = np.take(strips, c1, axis=2) - np.take(strips, c0, axis=2)
    kh, kw = (r1 - r0).astype(np.float32), (c1 - c0).astype(np.float32)
    out = total.astype(np.float32) / kh[None, :, None, None] / kw[None, None, :, None]
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _refine(net: Net, integral, boxes, image_inds, w, h, size):
    """Crop every candidate for R-Net (24) or O-Net (48) and run the net; empty crops are dropped (facenet-pytorch
    would fail on them)."""
    y, ey, x, ex = pad(boxes, w, h)
    k = (ey > y - 1) & (ex > x - 1)
    boxes, image_inds = boxes[torch.from_numpy(k)], image_inds[torch.from_numpy(k)]
    im_data = area_crops(integral, image_inds.numpy(), (y[k], ey[k], x[k], ex[k]), size)
    return boxes, image_inds, net((im_data - 127.5) * 0.0078125)


def detect_faces(
    imgs: np.ndarray,
    pnet: Net,
    rnet: Net,
    onet: Net,
    min_face_size: int,
    thresholds: tuple[float, float, float],
    factor: float,
) -> list[Detections]:
    """facenet-pytorch's detect_face on a batch of equal-size uint8 images (B, H, W, 3), step for step."""
    n, h, w, _ = imgs.shape
    integral = integral_image(imgs)

    all_boxes, all_inds, scale_picks, offset = [], [], [], 0
    for scale in _pyramid(h, w, min_face_size, factor):
        im_data = area_resize(integral, int(h * scale + 1), int(w * scale + 1))
        reg, probs = pnet((im_data - 127.5) * 0.0078125)
        boxes_scale, inds_scale = generateBoundingBox(reg, probs[:, 1], scale, thresholds[0])
        all_boxes.append(boxes_scale)
        all_inds.append(inds_scale)
        scale_picks.append(batched_nms(boxes_scale[:, :4], boxes_scale[:, 4], inds_scale, 0.5) + offset)
        offset += boxes_scale.shape[0]
    picks = torch.cat(scale_picks)
    boxes, image_inds = torch.cat(all_boxes)[picks], torch.cat(all_inds)[picks]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack(
        [
            boxes[:, 0] + boxes[:, 5] * regw,
            boxes[:, 1] + boxes[:, 6] * regh,
            boxes[:, 2] + boxes[:, 7] * regw,
            boxes[:, 3] + boxes[:, 8] * regh,
            boxes[:, 4],
        ]
    ).permute(1, 0)
    boxes = rerec(boxes)

    if len(boxes) > 0:  # R-Net
        boxes, image_inds, (reg, score) = _refine(rnet, integral, boxes, image_inds, w, h, 24)
        score = score[:, 1]
        ipass = score > thresholds[1]
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds, reg = image_inds[ipass], reg[ipass]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes = rerec(bbreg(boxes[pick], reg[pick]))
        image_inds = image_inds[pick]

    points = torch.zeros(0, 5, 2)
    if len(boxes) > 0:  # O-Net
        boxes, image_inds, (reg, landmarks, score) = _refine(onet, integral, boxes, image_inds, w, h, 48)
        score = score[:, 1]
        ipass = score > thresholds[2]
        landmarks = landmarks[ipass].permute(1, 0)
        boxes = torch.cat((boxes[ipass, :4], score[ipass].unsqueeze(1)), dim=1)
        image_inds, reg = image_inds[ipass], reg[ipass]
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i.repeat(5, 1) * landmarks[:5, :] + boxes[:, 0].repeat(5, 1) - 1
        points_y = h_i.repeat(5, 1) * landmarks[5:10, :] + boxes[:, 1].repeat(5, 1) - 1
        points = torch.stack((points_x, points_y)).permute(2, 1, 0)
        boxes = bbreg(boxes, reg)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    boxes_np, points_np, inds_np = boxes.numpy(), points.numpy(), image_inds.numpy()
    return [(boxes_np[inds_np == i].copy(), points_np[inds_np == i].copy()) for i in range(n)]
