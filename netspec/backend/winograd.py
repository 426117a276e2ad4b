"""Winograd's minimal filtering F(2×2, 3×3) for the ``cpu`` backend's 3×3, stride-1 convolutions.

Each 2×2 block of outputs (a *tile*) is computed from the 4×4 block of input that covers it with 16
products per channel instead of 36 (Lavin & Gray, 2016):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        g: 3×3 filter,  d: 4×4 input tile,  Y: 2×2 output tile

Over a batch this is 16 GEMMs, one per position k of the 4×4 transformed tile:
``M[k] (F, P) = U[k] (F, C) @ V[k] (C, P)`` with U the transformed filters, V the transformed input tiles
(P = images × tiles) — 2.25× fewer multiply-adds than the 9·C per output of im2col + GEMM, and a
transformed input of 16/4 = 4 values per output pixel and channel instead of 9.  Backward runs the adjoints:
``dM = A dY Aᵀ``; ``dU[k] = dM[k] V[k]ᵀ`` folded back by ``dg = Gᵀ dU G``; ``dV[k] = U[k]ᵀ dM[k]`` folded
back by ``dd = B dV Bᵀ`` and added into the input's gradient (neighbouring input tiles overlap by 2).

The tiles cover ceil(oh/2) × ceil(ow/2) blocks; cells outside the (padded) input read 0, outputs beyond the
top are not written.  The transforms are exact in real arithmetic; in float32 they add rounding of the order
of the GEMM's own (tests/test_winograd.py compares with im2col + GEMM and checks the gradients).
"""
from __future__ import annotations

from numba import njit

KERNEL = dict(cache=True, nogil=True, error_model="numpy")


OUT_BLOCK = 8      # filters whose output gradient :func:`output_grad` gathers before transforming it


def work_size(th: int, tw: int) -> int:
    """Floats of scratch the kernels need for images of th × tw tiles (the plan allocates it; kernels
    allocate nothing): the input transform's column-transformed rows, 4 values × 2 row parities ×
    (th + 1) rows × tw tiles, and the zero-bordered padded plane of (2·th + 2) × (2·tw + 2) cells; the
    output gradient's gathered tiles, 4 values × th·tw tiles × :data:`OUT_BLOCK` filters."""
    return max(8 * (th + 1) * tw + (2 * th + 2) * (2 * tw + 2), 4 * th * tw * OUT_BLOCK)


@njit(**KERNEL)
def filter_transform(w, u, work):
    """``u[k, f, c]`` = (G w[f, c] Gᵀ) at position k = 4·row + column (w: F×C×3×3)."""
    n_f, n_c = w.shape[0], w.shape[1]
    half = w.dtype.type(0.5)
    t = work[:12].reshape((4, 3))
    for f in range(n_f):
        for c in range(n_c):
            g = w[f, c]
            for j in range(3):                       # G g: the rows
                t[0, j] = g[0, j]
                t[1, j] = half * (g[0, j] + g[1, j] + g[2, j])
                t[2, j] = half * (g[0, j] - g[1, j] + g[2, j])
                t[3, j] = g[2, j]
            for i in range(4):                       # (G g) Gᵀ: the columns
                u[4 * i + 0, f, c] = t[i, 0]
                u[4 * i + 1, f, c] = half * (t[i, 0] + t[i, 1] + t[i, 2])
                u[4 * i + 2, f, c] = half * (t[i, 0] - t[i, 1] + t[i, 2])
                u[4 * i + 3, f, c] = t[i, 2]


@njit(**KERNEL)
def filter_grad(du, dw, work):
    """``dw[f, c]`` = Gᵀ dU[·, f, c] G, the adjoint of :func:`filter_transform`."""
    n_f, n_c = dw.shape[0], dw.shape[1]
    half = dw.dtype.type(0.5)
    t = work[:12].reshape((4, 3))
    for f in range(n_f):
        for c in range(n_c):
            for i in range(4):                       # (dU G): each row of the 4×4 to 3 values
                e0, e1, e2, e3 = du[4 * i, f, c], du[4 * i + 1, f, c], du[4 * i + 2, f, c], du[4 * i + 3, f, c]
                t[i, 0] = e0 + half * (e1 + e2)
                t[i, 1] = half * (e1 - e2)
                t[i, 2] = half * (e1 + e2) + e3
            for j in range(3):                       # Gᵀ (dU G): the columns
                dw[f, c, 0, j] = t[0, j] + half * (t[1, j] + t[2, j])
                dw[f, c, 1, j] = half * (t[1, j] - t[2, j])
                dw[f, c, 2, j] = half * (t[1, j] + t[2, j]) + t[3, j]


@njit(**KERNEL)
def input_transform(x, ph, pw, th, tw, v, work):
    """``v[k, c, p]`` = (Bᵀ d B) at position k = 4·row + column of the 4×4 input tile d of tile
    p = (n·th + ty)·tw + tx (rows 2·ty − ph …, columns 2·tx − pw …; cells outside ``x`` are 0).

    Per image and channel, copied into a zero-bordered padded plane: each of its 2·th + 2 rows is
    transformed along the row (· B) for every tile column at once, into ``r[j, parity, row // 2, tx]``;
    then each output position k = 4·i + j is a sum of two such planes shifted by one tile row, a loop over
    all th·tw tiles of the image, unit-stride (it vectorizes; loops per tile row, tw = 7 long, do not)."""
    n_img, n_c, h, w = x.shape
    tt, plane = th * tw, (th + 1) * tw
    r = work[:8 * plane].reshape((4, 2, plane))
    xp = work[8 * plane:8 * plane + (2 * th + 2) * (2 * tw + 2)].reshape((2 * th + 2, 2 * tw + 2))
    xp[...] = 0.0                                            # the border stays 0; the interior is rewritten
    for n in range(n_img):
        for c in range(n_c):
            for yy in range(h):
                for xx in range(w):
                    xp[yy + ph, xx + pw] = x[n, c, yy, xx]
            for y in range(2 * th + 2):                      # d B, row by row
                par, o, row = y % 2, (y // 2) * tw, xp[y]
                for q in range(tw):
                    a0, a1, a2, a3 = row[2 * q], row[2 * q + 1], row[2 * q + 2], row[2 * q + 3]
                    r[0, par, o + q] = a0 - a2
                    r[1, par, o + q] = a1 + a2
                    r[2, par, o + q] = a2 - a1
                    r[3, par, o + q] = a1 - a3
            p0 = n * tt
            for j in range(4):                               # Bᵀ (d B): rows 2·ty … 2·ty + 3
                ev, od = r[j, 0], r[j, 1]
                for q in range(tt):
                    v[j, c, p0 + q] = ev[q] - ev[q + tw]
                    v[4 + j, c, p0 + q] = od[q] + ev[q + tw]
                    v[8 + j, c, p0 + q] = ev[q + tw] - od[q]
                    v[12 + j, c, p0 + q] = od[q] - od[q + tw]


@njit(**KERNEL)
def input_grad(dv, ph, pw, th, tw, dx, work):
    """``dx`` = the sum of ``B dV Bᵀ`` of every tile at the tile's place, the adjoint of
    :func:`input_transform` run backwards through its two passes into the padded plane, whose interior is
    ``dx`` (every cell of ``dx`` lies in some tile, so each is written once)."""
    n_img, n_c, h, w = dx.shape
    tt, plane = th * tw, (th + 1) * tw
    r = work[:8 * plane].reshape((4, 2, plane))
    xp = work[8 * plane:8 * plane + (2 * th + 2) * (2 * tw + 2)].reshape((2 * th + 2, 2 * tw + 2))
    for n in range(n_img):
        for c in range(n_c):
            p0 = n * tt
            for j in range(4):                               # adjoint of Bᵀ (d B)
                ev, od = r[j, 0], r[j, 1]
                for q in range(tt):
                    ev[q] = dv[j, c, p0 + q]
                    od[q] = dv[4 + j, c, p0 + q] - dv[8 + j, c, p0 + q] + dv[12 + j, c, p0 + q]
                for q in range(tt, plane):
                    ev[q] = 0.0
                    od[q] = 0.0
                for q in range(tt):
                    ev[q + tw] += dv[4 + j, c, p0 + q] + dv[8 + j, c, p0 + q] - dv[j, c, p0 + q]
                    od[q + tw] -= dv[12 + j, c, p0 + q]
            for y in range(ph, ph + h):                      # adjoint of d B, the rows inside dx
                par, o, row = y % 2, (y // 2) * tw, xp[y]
                row[0] = r[0, par, o]
                row[1] = r[1, par, o] - r[2, par, o] + r[3, par, o]
                for q in range(1, tw):
                    row[2 * q] = r[0, par, o + q] - r[0, par, o + q - 1] + r[1, par, o + q - 1] + r[2, par, o + q - 1]
                    row[2 * q + 1] = r[1, par, o + q] - r[2, par, o + q] + r[3, par, o + q] - r[3, par, o + q - 1]
                row[2 * tw] = r[1, par, o + tw - 1] + r[2, par, o + tw - 1] - r[0, par, o + tw - 1]
                row[2 * tw + 1] = -r[3, par, o + tw - 1]
                for xx in range(w):
                    dx[n, c, y - ph, xx] = row[xx + pw]


@njit(**KERNEL)
def output_transform(m, bias, use_bias, relu, th, tw, y, work):
    """``y`` (N, F, oh, ow) = Aᵀ M A of every tile, plus the bias, then max(·, 0) if ``relu``: the four
    outputs of every tile of an image in one loop over its th·tw tiles, then placed row by row."""
    n_img, n_f, oh, ow = y.shape
    zero = y.dtype.type(0.0)
    tt = th * tw
    out = work[:4 * tt].reshape((4, tt))                      # the tiles' outputs (0, 0), (0, 1), (1, 0), (1, 1)
    for n in range(n_img):
        p0 = n * tt
        for f in range(n_f):
            b = bias[f] if use_bias else zero
            for q in range(tt):
                a0 = m[0, f, p0 + q] + m[4, f, p0 + q] + m[8, f, p0 + q]       # Aᵀ M: row 0, columns 0–3
                a1 = m[1, f, p0 + q] + m[5, f, p0 + q] + m[9, f, p0 + q]
                a2 = m[2, f, p0 + q] + m[6, f, p0 + q] + m[10, f, p0 + q]
                a3 = m[3, f, p0 + q] + m[7, f, p0 + q] + m[11, f, p0 + q]
                c0 = m[4, f, p0 + q] - m[8, f, p0 + q] - m[12, f, p0 + q]      # row 1
                c1 = m[5, f, p0 + q] - m[9, f, p0 + q] - m[13, f, p0 + q]
                c2 = m[6, f, p0 + q] - m[10, f, p0 + q] - m[14, f, p0 + q]
                c3 = m[7, f, p0 + q] - m[11, f, p0 + q] - m[15, f, p0 + q]
                o00, o01 = a0 + a1 + a2 + b, a1 - a2 - a3 + b              # (Aᵀ M) A
                o10, o11 = c0 + c1 + c2 + b, c1 - c2 - c3 + b
                if relu:
                    o00, o01, o10, o11 = max(o00, zero), max(o01, zero), max(o10, zero), max(o11, zero)
                out[0, q], out[1, q], out[2, q], out[3, q] = o00, o01, o10, o11
            for yy in range(oh):
                src = out[2 * (yy % 2):2 * (yy % 2) + 2]
                o = (yy // 2) * tw
                for xx in range(ow):
                    y[n, f, yy, xx] = src[xx % 2, o + xx // 2]


@njit(**KERNEL)
def output_grad(dy, y, relu, th, tw, dm, db, use_bias, work):
    """``dm[k, f, p]`` = (A dY Aᵀ) of every tile's 2×2 gradient (0 beyond the top; times [y > 0] if
    ``relu``), the adjoint of :func:`output_transform`; and the bias gradient, if ``use_bias``, added to
    ``db`` (which the caller zeroes).  The gradient is gathered tile-wise for :data:`OUT_BLOCK` filters
    before their loops over the tiles read it (read at once, the vector loads would wait on the scalar
    stores: 1.8× slower)."""
    n_img, n_f, oh, ow = dy.shape
    zero = dy.dtype.type(0.0)
    tt = th * tw
    gs = work[:4 * tt * OUT_BLOCK].reshape((OUT_BLOCK, 4, tt))   # tiles' (0, 0), (0, 1), (1, 0), (1, 1)
    if 2 * th != oh or 2 * tw != ow:
        gs[...] = zero
    for n in range(n_img):
        p0 = n * tt
        for f0 in range(0, n_f, OUT_BLOCK):
            for f in range(f0, min(n_f, f0 + OUT_BLOCK)):
                g = gs[f - f0]
                acc = zero
                for yy in range(oh):
                    i, o = 2 * (yy % 2), (yy // 2) * tw
                    for xx in range(ow):
                        e = dy[n, f, yy, xx]
                        e = zero if relu and y[n, f, yy, xx] <= zero else e
                        g[i + xx % 2, o + xx // 2] = e
                        acc += e
                if use_bias:
                    db[f] += acc
            for f in range(f0, min(n_f, f0 + OUT_BLOCK)):
                g = gs[f - f0]
                for q in range(tt):        # rows of A e: (g00, g01), + (g10, g11), − (g10, g11), −(g10, g11); then
                    a, b = g[0, q], g[1, q]    # · Aᵀ: a, a + b, a − b, −b.  Four output rows per loop: 16 rows
                    dm[0, f, p0 + q], dm[1, f, p0 + q], dm[2, f, p0 + q], dm[3, f, p0 + q] = a, a + b, a - b, -b
                for q in range(tt):        # a multiple of 4 KiB apart, written together, thrash L1 (5× slower)
                    a, b = g[0, q] + g[2, q], g[1, q] + g[3, q]
                    dm[4, f, p0 + q], dm[5, f, p0 + q], dm[6, f, p0 + q], dm[7, f, p0 + q] = a, a + b, a - b, -b
                for q in range(tt):
                    a, b = g[0, q] - g[2, q], g[1, q] - g[3, q]
                    dm[8, f, p0 + q], dm[9, f, p0 + q], dm[10, f, p0 + q], dm[11, f, p0 + q] = a, a + b, a - b, -b
                for q in range(tt):
                    a, b = -g[2, q], -g[3, q]
                    dm[12, f, p0 + q], dm[13, f, p0 + q], dm[14, f, p0 + q], dm[15, f, p0 + q] = a, a + b, a - b, -b
