"""Slice-stack tensor operations: 3D convs of the MP3D family through fast kernels.

The MP3D backbone family works on 3D feature maps ``(B, C, D, H, W)`` where ``D`` is
the slice (z) axis and ``H, W`` are the axial image axes. On CPU the maps are kept in
``torch.channels_last_3d`` memory order, i.e. physically ``(B, D, H, W, C)``, where
these views are free (no copy):

* :func:`fold_slices`: ``(B*D, C, H, W)`` channels-last -- the slices as a batch of 2D
  maps, for per-slice layers (``1 x k x k`` and ``1 x 1 x 1`` convs, strided or not);
* the rows ``(B, D*H*W, C)`` -- one matrix row per voxel, so a ``k x 1 x 1`` conv along
  the slice axis is ``k`` matrix products whose outputs are shifted by whole slices
  (:func:`conv_along_slices_gemm`);
* :func:`depth_as_height`: ``(B, C, D, H*W)`` channels-last -- for pooling along the
  slice axis.

:class:`SliceConv3d` is an ``nn.Conv3d`` (same parameters, state-dict keys, semantics)
whose forward picks the kernel that computes it (``impl``); norm layers (GroupNorm,
BatchNorm3d) run directly on the 5D tensors.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'fold_slices', 'unfold_slices', 'depth_as_height', 'to_slice_layout',
    'strict_channels_last', 'voxel_rows', 'rows_to_volume', 'conv_along_slices_gemm',
    'pointwise_conv_gemm', 'SliceConv3d', 'set_conv_impl',
    'slice_max_pool3d', 'check_odd_slices', 'CONV_IMPLS'
]

CONV_IMPLS = ('auto', 'conv3d', 'fold2d', 'fold2d_gemm')


def strict_channels_last(x: Tensor) -> Tensor:
    """Return ``x`` (4D or 5D) in channels-last memory order with channel stride 1.

    A no-op (same tensor) when ``x`` already has that layout. Single-channel tensors
    are copied into explicit channels-last strides: torch treats a contiguous
    ``C = 1`` tensor as channels-last too, but the conv kernels then keep producing
    NCHW outputs, which would make every later view a copy.
    """
    fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    if x.is_contiguous(memory_format=fmt) and x.stride(1) == 1:
        return x
    if x.shape[1] != 1:
        return x.contiguous(memory_format=fmt)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    if out.stride(1) != 1:  # torch also keeps C = 1 strides "contiguous" here
        spatial = x[0, 0].numel()
        strides = (spatial, 1) + tuple(out.stride()[2:])
        out = torch.empty_strided(x.shape, strides, dtype=x.dtype, device=x.device)
    return out.copy_(x)


def to_slice_layout(x: Tensor) -> Tensor:
    """Return ``x`` (B, C, D, H, W) in ``channels_last_3d`` memory order (no-op if so)."""
    return strict_channels_last(x)


def fold_slices(x: Tensor) -> Tensor:
    """View a 3D map (B, C, D, H, W) as a batch of 2D maps (B*D, C, H, W).

    Free (a view) when ``x`` is ``channels_last_3d``; the result is then
    ``channels_last``. Any other layout is copied (correct, slower).
    """
    b, c, d, h, w = x.shape
    return x.transpose(1, 2).reshape(b * d, c, h, w)


def unfold_slices(x: Tensor, batch_size: int) -> Tensor:
    """Inverse of :func:`fold_slices`: (B*D, C, H, W) -> (B, C, D, H, W), a view."""
    bd, c, h, w = x.shape
    return x.view(batch_size, bd // batch_size, c, h, w).transpose(1, 2)


def depth_as_height(x: Tensor) -> Tensor:
    """View (B, C, D, H, W) as (B, C, D, H*W): slices as rows, pixels as columns."""
    b, c, d, h, w = x.shape
    return x.reshape(b, c, d, h * w)


def voxel_rows(x: Tensor) -> Tensor:
    """View (B, C, D, H, W) as rows (B, D*H*W, C); free for ``channels_last_3d``."""
    b, c, d, h, w = x.shape
    return strict_channels_last(x).permute(0, 2, 3, 4, 1).reshape(b, d * h * w, c)


def rows_to_volume(rows: Tensor, d: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`voxel_rows`: (B, D*H*W, C) -> (B, C, D, H, W) view."""
    return rows.view(rows.shape[0], d, h, w, rows.shape[2]).permute(0, 4, 1, 2, 3)


def _slice_shift_ranges(s: int, d: int, hw: int) -> Tuple[slice, slice]:
    """Rows of output slices ``d`` and of the input slices ``d + s`` they read."""
    out_rows = slice(max(0, -s) * hw, (d - max(0, s)) * hw)
    in_rows = slice(max(0, s) * hw, (d + min(0, s)) * hw)
    return out_rows, in_rows


class _AlongSliceGemm(torch.autograd.Function):
    """``k x 1 x 1`` "same" conv on voxel rows ``(B, D*HW, C_in)`` as shifted GEMMs."""

    @staticmethod
    def forward(ctx, rows: Tensor, weight: Tensor, bias: Optional[Tensor], d: int,
                hw: int) -> Tensor:
        k = weight.shape[2]
        out = F.linear(rows, weight[:, :, k // 2, 0, 0], bias)  # centre tap: all rows
        dtype = out.dtype  # float16 under autocast: the other taps follow it
        r = rows.to(dtype)
        w = weight[:, :, :, 0, 0].to(dtype)  # (C_out, C_in, k)
        for t in range(k):
            s = t - k // 2
            if s == 0 or abs(s) >= d:
                continue
            o_rows, i_rows = _slice_shift_ranges(s, d, hw)
            w_t = w[:, :, t].t()
            for i in range(rows.shape[0]):
                out[i, o_rows].addmm_(r[i, i_rows], w_t)
        ctx.save_for_backward(rows, weight)
        ctx.d, ctx.hw = d, hw
        ctx.bias_dtype = None if bias is None else bias.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        rows, weight = ctx.saved_tensors
        d, hw = ctx.d, ctx.hw
        k = weight.shape[2]
        grad_out = grad_out.contiguous()
        dtype = grad_out.dtype
        r = rows.to(dtype)
        w = weight[:, :, :, 0, 0].to(dtype)
        grad_rows = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_rows = torch.matmul(grad_out, w[:, :, k // 2])
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros(weight.shape, dtype=dtype, device=weight.device)
        for t in range(k):
            s = t - k // 2
            if abs(s) >= d:
                continue
            o_rows, i_rows = _slice_shift_ranges(s, d, hw)
            for i in range(rows.shape[0]):
                if grad_rows is not None and s != 0:
                    grad_rows[i, i_rows].addmm_(grad_out[i, o_rows], w[:, :, t])
                if grad_w is not None:
                    grad_w[:, :, t, 0, 0].addmm_(grad_out[i, o_rows].t(), r[i, i_rows])
        if ctx.bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 1)).to(ctx.bias_dtype)
        if grad_rows is not None:
            grad_rows = grad_rows.to(rows.dtype)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        return grad_rows, grad_w, grad_b, None, None


def conv_along_slices_gemm(x: Tensor, weight: Tensor,
                           bias: Optional[Tensor] = None) -> Tensor:
    """A ``k x 1 x 1`` conv (stride 1, zero padding ``k // 2``) as ``k`` matrix products.

    Args:
        x: ``(B, C_in, D, H, W)``; ``channels_last_3d`` makes the row view free.
        weight: ``(C_out, C_in, k, 1, 1)`` with odd ``k``.
        bias: optional ``(C_out,)``.

    Returns:
        ``(B, C_out, D, H, W)`` in ``channels_last_3d`` order, equal to
        ``F.conv3d(x, weight, bias, padding=(k // 2, 0, 0))``. The centre tap is one
        GEMM over all ``D*H*W`` voxel rows; tap ``t`` adds ``x[d + t - k//2] @ W_t^T``
        in place to the rows of slice ``d`` (slices outside ``[0, D)`` are the zero
        padding: skipped, not multiplied). The backward pass is the same shifted
        GEMMs (a custom autograd function, no copies of slices).
    """
    _, _, d, h, w = x.shape
    out = _AlongSliceGemm.apply(voxel_rows(x), weight, bias, d, h * w)
    return rows_to_volume(out, d, h, w)


def pointwise_conv_gemm(x: Tensor, weight: Tensor,
                        bias: Optional[Tensor] = None) -> Tensor:
    """A ``1 x 1 x 1`` conv with stride 1 as one GEMM over voxel rows.

    ``x`` (B, C_in, D, H, W), ``weight`` (C_out, C_in, 1, 1, 1) -> (B, C_out, D, H, W)
    in ``channels_last_3d`` order.
    """
    _, _, d, h, w = x.shape
    return rows_to_volume(F.linear(voxel_rows(x), weight.flatten(1), bias), d, h, w)


class SliceConv3d(nn.Conv3d):
    """``nn.Conv3d`` computed through the fastest measured kernel for its shape.

    Parameters, state-dict keys, initialisation and results are those of
    ``nn.Conv3d`` (input and output ``(B, C, D, H, W)``); only the kernel that computes
    it differs. ``impl`` (an attribute, settable after construction, e.g. with
    :func:`set_conv_impl`) selects it:

    * ``'conv3d'``: ``F.conv3d`` on the input as it is;
    * ``'fold2d'``: *per-slice* kernels ``(1, kh, kw)`` with unit depth stride and no
      depth padding (the P3D spatial conv "S", all ``1 x 1 x 1`` convs, the MP3D stem)
      as ``conv2d`` with weight ``weight[:, :, 0]`` on :func:`fold_slices`
      (channels-last); *along-slice* kernels ``(k, 1, 1)`` with unit stride (the
      temporal conv "T") as a ``(k, 1)`` ``conv2d`` on :func:`depth_as_height`;
      anything else (MR3D ``3 x 3 x 3`` and ``7 x 7 x 7``) as ``conv3d``;
    * ``'fold2d_gemm'``: as ``'fold2d'`` but along-slice kernels with "same" zero
      padding run as matrix products (:func:`conv_along_slices_gemm`) and unstrided
      ``1 x 1 x 1`` convs as one matrix product (:func:`pointwise_conv_gemm`), both
      on the voxel rows of the channels-last-3d map;
    * ``'auto'`` (default): ``'fold2d_gemm'`` on CPU, ``'conv3d'`` elsewhere (CUDA:
      cuDNN runs the 3D convs natively; re-measure with ``backbone_speed.py
      --conv-micro --device cuda``).

    Measured on this project's 2-core Xeon CPU (torch 2.13 + oneDNN, float32, freed
    memory retained; docs/model_complexity.md has the tables), whole MP3D-63 forward,
    9 x 512 x 512, interleaved rounds: ``'fold2d_gemm'`` 2.30 s vs ``'conv3d'`` (NCDHW
    throughout) 2.58 s with 2 threads, 3.93-4.10 s vs 5.17 s with 1 thread (within
    noise in one run on a heavily loaded machine). Per conv, the along-slice GEMM was
    1.7-2.0 x faster than ``conv3d`` at stages 1-2; the folded ``conv2d`` and ``conv3d``
    were on par for ``1 x 3 x 3`` and ``1 x 1 x 1``, but ``conv3d`` returns NCDHW on CPU
    even for channels-last inputs, so mixing it with the channels-last GEMM costs a
    layout copy per layer. Re-measure with ``tools/benchmark/backbone_speed.py
    --conv-micro`` (also with ``--device cuda``).
    """

    impl: str = 'auto'

    def _route(self, device_type: str) -> str:
        impl = self.impl
        if impl not in CONV_IMPLS:
            raise ValueError(f'SliceConv3d.impl must be one of {CONV_IMPLS}, '
                             f'got {impl!r}')
        if impl == 'auto':
            impl = 'fold2d_gemm' if device_type == 'cpu' else 'conv3d'
        if impl == 'conv3d' or self.padding_mode != 'zeros' \
                or isinstance(self.padding, str):
            return '3d'
        kd, kh, kw = self.kernel_size
        sd, sh, sw = self.stride
        pd, ph, pw = self.padding
        dd = self.dilation[0]
        if kd == 1 and sd == 1 and pd == 0 and dd == 1:
            pointwise = (kh == kw == 1 and sh == sw == 1 and ph == pw == 0
                         and self.groups == 1)
            return 'linear' if impl == 'fold2d_gemm' and pointwise else 'fold'
        if kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0:
            same = sd == 1 and dd == 1 and kd % 2 == 1 and pd == kd // 2
            if impl == 'fold2d_gemm' and same and self.groups == 1:
                return 'gemm'
            return 'depth'
        return '3d'

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, D, H, W) -> (B, C_out, D', H', W'), as ``nn.Conv3d``."""
        if x.dim() != 5:
            raise ValueError(f'{type(self).__name__} expects a (B, C, D, H, W) tensor, '
                             f'got shape {tuple(x.shape)}')
        route = self._route(x.device.type)
        if route == 'fold':
            y = F.conv2d(strict_channels_last(fold_slices(x)), self.weight[:, :, 0],
                         self.bias, self.stride[1:], self.padding[1:], self.dilation[1:],
                         self.groups)
            return unfold_slices(y, x.shape[0])
        if route == 'gemm':
            return conv_along_slices_gemm(x, self.weight, self.bias)
        if route == 'linear':
            return pointwise_conv_gemm(x, self.weight, self.bias)
        if route == 'depth':
            b, _, _, h, w = x.shape
            y = F.conv2d(strict_channels_last(depth_as_height(x)), self.weight[..., 0],
                         self.bias, (self.stride[0], 1), (self.padding[0], 0),
                         (self.dilation[0], 1), self.groups)
            return y.view(b, y.shape[1], y.shape[2], h, w)
        return super().forward(x)


def set_conv_impl(model: nn.Module, impl: str) -> int:
    """Set ``impl`` of every :class:`SliceConv3d` in ``model``; returns how many."""
    if impl not in CONV_IMPLS:
        raise ValueError(f'impl must be one of {CONV_IMPLS}, got {impl!r}')
    n = 0
    for m in model.modules():
        if isinstance(m, SliceConv3d):
            m.impl = impl
            n += 1
    return n


def slice_max_pool3d(x: Tensor, kernel_size: Tuple[int, int, int],
                     stride: Tuple[int, int, int],
                     padding: Tuple[int, int, int]) -> Tensor:
    """3D max pooling of ``x`` (B, C, D, H, W).

    A ``(kd, 1, 1)`` window pools along the slice axis only (2D pooling on the
    :func:`depth_as_height` view). Other windows call ``max_pool3d``; on CPU on a
    ``channels_last_3d`` tensor, which torch pools ~10 x faster than NCDHW.
    """
    kd, kh, kw = kernel_size
    if kh == 1 and kw == 1 and stride[1] == 1 and stride[2] == 1:
        b, c, _, h, w = x.shape
        y = F.max_pool2d(depth_as_height(x), (kd, 1), (stride[0], 1), (padding[0], 0))
        return y.view(b, c, y.shape[2], h, w)
    if x.device.type == 'cpu':
        x = to_slice_layout(x)
    return F.max_pool3d(x, kernel_size, stride, padding)


def check_odd_slices(num_slices: int, arg_name: str = 'num_slices',
                     owner: Optional[str] = None) -> int:
    """Return ``num_slices`` if it is an odd int >= 3, else raise ``ValueError``."""
    where = f'{owner}: ' if owner else ''
    if isinstance(num_slices, bool) or not isinstance(num_slices, int):
        raise ValueError(f'{where}{arg_name} must be an odd int >= 3, got {num_slices!r}')
    if num_slices < 3 or num_slices % 2 == 0:
        raise ValueError(f'{where}{arg_name} must be an odd int >= 3 (the key slice is '
                         f'the centre one), got {num_slices}')
    return num_slices
