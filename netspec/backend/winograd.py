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
WORK_ROWS = 10     # the kernels' scratch ``work``: WORK_ROWS × (2·tw + 2), from the plan (kernels allocate nothing)


@njit(**KERNEL)
def filter_transform(w, u, work):
    """``u[k, f, c]`` = (G w[f, c] Gᵀ) at position k = 4·row + column (w: F×C×3×3)."""
    n_f, n_c = w.shape[0], w.shape[1]
    half = w.dtype.type(0.5)
    t = work[:4, :3]
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
    t = work[:4, :3]
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
def _rows(x, n, c, y0, pw, band):
    """``band[a, j]`` = x[n, c, y0 + a, j − pw] for a < 4 and every column j of the tiles (0 outside x)."""
    h, w = x.shape[2], x.shape[3]
    for a in range(4):
        yy = y0 + a
        if yy < 0 or yy >= h:
            band[a, :] = 0.0
            continue
        for j in range(band.shape[1]):
            xx = j - pw
            band[a, j] = x[n, c, yy, xx] if xx >= 0 and xx < w else 0.0


@njit(**KERNEL)
def input_transform(x, ph, pw, th, tw, v, work):
    """``v[k, c, p]`` = (Bᵀ d B) at position k = 4·row + column of the 4×4 input tile d of tile
    p = (n·th + ty)·tw + tx (rows 2·ty − ph …, columns 2·tx − pw …; cells outside ``x`` are 0).  Per row of
    tiles: Bᵀ d over the whole band of 4 input rows, then · B tile by tile, in loops over the tiles that
    vectorize."""
    n_img, n_c = x.shape[0], x.shape[1]
    band, s = work[:4], work[4:8]
    for n in range(n_img):
        for c in range(n_c):
            for ty in range(th):
                _rows(x, n, c, 2 * ty - ph, pw, band)
                for j in range(band.shape[1]):                # Bᵀ d
                    s[0, j] = band[0, j] - band[2, j]
                    s[1, j] = band[1, j] + band[2, j]
                    s[2, j] = band[2, j] - band[1, j]
                    s[3, j] = band[1, j] - band[3, j]
                p0 = (n * th + ty) * tw
                for i in range(4):                            # (Bᵀ d) B
                    for t in range(tw):
                        v[4 * i, c, p0 + t] = s[i, 2 * t] - s[i, 2 * t + 2]
                    for t in range(tw):
                        v[4 * i + 1, c, p0 + t] = s[i, 2 * t + 1] + s[i, 2 * t + 2]
                    for t in range(tw):
                        v[4 * i + 2, c, p0 + t] = s[i, 2 * t + 2] - s[i, 2 * t + 1]
                    for t in range(tw):
                        v[4 * i + 3, c, p0 + t] = s[i, 2 * t + 1] - s[i, 2 * t + 3]


@njit(**KERNEL)
def input_grad(dv, ph, pw, th, tw, dx, work):
    """``dx`` = the sum of ``B dV Bᵀ`` of every tile at the tile's place (the adjoint of
    :func:`input_transform`; cells outside ``dx`` are dropped; neighbouring tiles overlap by 2)."""
    n_img, n_c, h, w = dx.shape
    width = 2 * tw + 2
    e, band = work[:4], work[4:8]                             # E Bᵀ of each tile's 4×4, spread over the band
    dx[...] = 0.0
    for n in range(n_img):
        for c in range(n_c):
            for ty in range(th):
                p0 = (n * th + ty) * tw
                e[...] = 0.0
                for i in range(4):                            # row i of E Bᵀ, added at columns 2·tx …
                    for t in range(tw):
                        e[i, 2 * t] += dv[4 * i, c, p0 + t]
                    for t in range(tw):
                        e[i, 2 * t + 1] += (dv[4 * i + 1, c, p0 + t] - dv[4 * i + 2, c, p0 + t]
                                            + dv[4 * i + 3, c, p0 + t])
                    for t in range(tw):
                        e[i, 2 * t + 2] += dv[4 * i + 1, c, p0 + t] + dv[4 * i + 2, c, p0 + t] - dv[4 * i, c, p0 + t]
                    for t in range(tw):
                        e[i, 2 * t + 3] -= dv[4 * i + 3, c, p0 + t]
                for j in range(width):                        # B (E Bᵀ): the 4 rows of the band
                    band[0, j] = e[0, j]
                    band[1, j] = e[1, j] - e[2, j] + e[3, j]
                    band[2, j] = e[1, j] + e[2, j] - e[0, j]
                    band[3, j] = -e[3, j]
                y0 = 2 * ty - ph
                lo, hi = max(0, pw), min(width, w + pw)
                for a in range(4):
                    yy = y0 + a
                    if yy < 0 or yy >= h:
                        continue
                    for j in range(lo, hi):
                        dx[n, c, yy, j - pw] += band[a, j]


@njit(**KERNEL)
def output_transform(m, bias, use_bias, relu, th, tw, y, work):
    """``y`` (N, F, oh, ow) = Aᵀ M A of every tile, plus the bias, then max(·, 0) if ``relu``."""
    n_img, n_f, oh, ow = y.shape
    zero = y.dtype.type(0.0)
    t0, t1, row = work[:4], work[4:8], work[8]               # rows 0 and 1 of Aᵀ M, per column j
    for n in range(n_img):
        for f in range(n_f):
            b = bias[f] if use_bias else zero
            for ty in range(th):
                p0 = (n * th + ty) * tw
                for j in range(4):                            # Aᵀ M: rows m0 + m1 + m2, m1 − m2 − m3
                    for q in range(tw):
                        t0[j, q] = m[j, f, p0 + q] + m[4 + j, f, p0 + q] + m[8 + j, f, p0 + q]
                    for q in range(tw):
                        t1[j, q] = m[4 + j, f, p0 + q] - m[8 + j, f, p0 + q] - m[12 + j, f, p0 + q]
                for i in range(2):                            # (Aᵀ M) A
                    yy = 2 * ty + i
                    if yy >= oh:
                        continue
                    t = t0 if i == 0 else t1
                    for q in range(tw):
                        row[2 * q] = t[0, q] + t[1, q] + t[2, q] + b
                        row[2 * q + 1] = t[1, q] - t[2, q] - t[3, q] + b
                    if relu:
                        for xx in range(ow):
                            y[n, f, yy, xx] = max(row[xx], zero)
                    else:
                        for xx in range(ow):
                            y[n, f, yy, xx] = row[xx]


@njit(**KERNEL)
def output_grad(dy, y, relu, th, tw, dm, db, use_bias, work):
    """``dm[k, f, p]`` = (A dY Aᵀ) of every tile's 2×2 gradient (0 beyond the top; times [y > 0] if
    ``relu``), the adjoint of :func:`output_transform`; and the bias gradient, if ``use_bias``, added to
    ``db`` (which the caller zeroes)."""
    n_img, n_f, oh, ow = dy.shape
    zero = dy.dtype.type(0.0)
    e, a0, a1 = work[:2], work[2:6], work[6:10]               # the tile rows; the rows of A e, columns 0, 1
    for n in range(n_img):
        for f in range(n_f):
            acc = zero
            for ty in range(th):
                for i in range(2):
                    yy = 2 * ty + i
                    ei = e[i]
                    if yy >= oh:
                        ei[:] = zero
                        continue
                    for xx in range(ow):
                        g = dy[n, f, yy, xx]
                        ei[xx] = zero if relu and y[n, f, yy, xx] <= zero else g
                        acc += ei[xx]
                    for xx in range(ow, 2 * tw):
                        ei[xx] = zero
                p0 = (n * th + ty) * tw
                for q in range(tw):                           # rows of A e: e0, e0 + e1, e0 − e1, −e1
                    a0[0, q], a1[0, q] = e[0, 2 * q], e[0, 2 * q + 1]
                    a0[1, q], a1[1, q] = e[0, 2 * q] + e[1, 2 * q], e[0, 2 * q + 1] + e[1, 2 * q + 1]
                    a0[2, q], a1[2, q] = e[0, 2 * q] - e[1, 2 * q], e[0, 2 * q + 1] - e[1, 2 * q + 1]
                    a0[3, q], a1[3, q] = -e[1, 2 * q], -e[1, 2 * q + 1]
                for r in range(4):                            # (A e) Aᵀ: columns the same
                    for q in range(tw):
                        dm[4 * r, f, p0 + q] = a0[r, q]
                    for q in range(tw):
                        dm[4 * r + 1, f, p0 + q] = a0[r, q] + a1[r, q]
                    for q in range(tw):
                        dm[4 * r + 2, f, p0 + q] = a0[r, q] - a1[r, q]
                    for q in range(tw):
                        dm[4 * r + 3, f, p0 + q] = -a1[r, q]
            if use_bias:
                db[f] += acc
