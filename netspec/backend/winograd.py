"""Winograd's minimal filtering F(2×2, 3×3) and F(2×2, 5×5) for the ``cpu`` backend's 3×3 and 5×5,
stride-1 convolutions.

Each 2×2 block of outputs (a *tile*) is computed from the 4×4 block of input that covers it with 16
products per channel instead of 36 (Lavin & Gray, 2016):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        g: 3×3 filter,  d: 4×4 input tile,  Y: 2×2 output tile

Over a batch this is 16 GEMMs, one per position k of the 4×4 transformed tile:
``M[k] (F, P) = U[k] (F, C) @ V[k] (C, P)`` with U the transformed filters, V the transformed input tiles
(P = images × tiles) — 2.25× fewer multiply-adds than the 9·C per output of im2col + GEMM, and a
transformed input of 16/4 = 4 values per output pixel and channel instead of 9.  Backward runs the adjoints:
``dM = A dY Aᵀ``; ``dU[k] = dM[k] V[k]ᵀ`` folded back by ``dg = Gᵀ dU G``; ``dV[k] = U[k]ᵀ dM[k]`` folded
back by ``dd = B dV Bᵀ`` and added into the input's gradient (neighbouring input tiles overlap by 2).

F(2×2, 5×5) is the same with 6×6 input tiles: 36 GEMMs, 2.8× fewer multiply-adds than im2col's 25·C per
output, its matrices built by Toom-Cook (:func:`matrices`) and its transforms written out from them.

The tiles cover ceil(oh/2) × ceil(ow/2) blocks; cells outside the (padded) input read 0, outputs beyond the
top are not written.  The transforms are exact in real arithmetic; in float32 they add rounding of the order
of the GEMM's own for 3×3 and about ten times that for 5×5, whose transforms scale by up to 5 and 1/24
(tests/test_winograd.py compares with im2col + GEMM and checks the gradients).
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


@njit(inline="always", **KERNEL)
def _pad_into(xc, ph, pw, xp):
    """One image channel ``xc`` into the interior of the zero-bordered padded plane ``xp``."""
    for yy in range(xc.shape[0]):
        for xx in range(xc.shape[1]):
            xp[yy + ph, xx + pw] = xc[yy, xx]


@njit(**KERNEL)
def _gather_tiles(dyc, yc, relu, tw, g):
    """One output channel's gradient ``dyc`` (times [yc > 0] if ``relu``) into ``g``: row 2·a + b holds
    cell (a, b) of every 2×2 tile.  Returns the gradient's sum (the bias gradient)."""
    zero = dyc.dtype.type(0.0)
    acc = zero
    for yy in range(dyc.shape[0]):
        i, o = 2 * (yy % 2), (yy // 2) * tw
        for xx in range(dyc.shape[1]):
            e = dyc[yy, xx]
            e = zero if relu and yc[yy, xx] <= zero else e
            g[i + xx % 2, o + xx // 2] = e
            acc += e
    return acc


@njit(inline="always", **KERNEL)
def _place_tiles(out, tw, yc):
    """The adjoint of :func:`_gather_tiles`: row 2·a + b of ``out``, cell (a, b) of every tile, into the
    output channel ``yc`` (cells beyond its edge dropped)."""
    for yy in range(yc.shape[0]):
        src = out[2 * (yy % 2):2 * (yy % 2) + 2]
        o = (yy // 2) * tw
        for xx in range(yc.shape[1]):
            yc[yy, xx] = src[xx % 2, o + xx // 2]


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
            _pad_into(x[n, c], ph, pw, xp)
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
            _place_tiles(out, tw, y[n, f])


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
                acc = _gather_tiles(dy[n, f], y[n, f], relu, tw, gs[f - f0])
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


# ------------------------------------------------------------------------------- F(2×2, r×r), any r
# The same algorithm for any filter size r (5×5 for cifar10_quick's layers): 2×2 outputs per tile from
# (r + 1)² transformed products, the transforms' matrices built by Toom-Cook from the points 0, ±1, ±2, …, ∞
# (:func:`matrices`) and applied by loops over their nonzero coefficients.

def matrices(r: int):
    """(Aᵀ 2×n, G n×r, Bᵀ n×n) of F(2, r), n = r + 1, for the points 0, 1, −1, 2, −2, … and ∞, with
    ``Aᵀ [(G g) ⊙ (Bᵀ d)]`` the correlation of d (n) with g (r).  Aᵀ and G follow from the points (Lavin &
    Gray's construction); Bᵀ is solved from the identity itself and is integer."""
    import numpy as np
    n = r + 1
    pts = [0.0] + [s * k for k in range(1, r) for s in (1.0, -1.0)][:r - 1]
    at, g = np.zeros((2, n)), np.zeros((n, r))
    for k, p in enumerate(pts):
        at[:, k] = [1.0, p]
        scale = np.prod([p - q for q in pts if q != p])
        g[k] = [p ** j / scale for j in range(r)]
    at[1, n - 1] = g[n - 1, r - 1] = 1.0
    eqs, rhs = [], []                           # Σ_k Aᵀ[i, k] G[k, s] Bᵀ[k, t] = [t = i + s]
    for i in range(2):
        for s in range(r):
            for t in range(n):
                row = np.zeros((n, n))
                row[:, t] = at[i] * g[:, s]
                eqs.append(row.ravel())
                rhs.append(float(t == i + s))
    bt = np.linalg.lstsq(np.array(eqs), np.array(rhs), rcond=None)[0].reshape(n, n)
    return at, g, np.round(bt)


def work_size5(th: int, tw: int) -> int:
    """Floats of scratch the F(2×2, 5×5) kernels need (see :func:`work_size`)."""
    plane, tt = (th + 2) * tw, th * tw
    return max(12 * plane + max((2 * th + 4) * (2 * tw + 4), 2 * tw + 4 + 6 * tt), 4 * tt * OUT_BLOCK, 16 * tt)


@njit(**KERNEL)
def filter_transform_n(w, g, u, work):
    """``u[n·i + j, f, c]`` = (G w[f, c] Gᵀ)[i, j] (G: n × r, from :func:`matrices`), as (w Gᵀ) first."""
    n_f, n_c, r = w.shape[0], w.shape[1], w.shape[2]
    n = g.shape[0]
    t = work[:r * n].reshape((r, n))
    for f in range(n_f):
        for c in range(n_c):
            for a in range(r):                       # w Gᵀ
                for j in range(n):
                    acc = 0.0
                    for b in range(r):
                        acc += w[f, c, a, b] * g[j, b]
                    t[a, j] = acc
            for i in range(n):                       # G (w Gᵀ)
                for j in range(n):
                    acc = 0.0
                    for a in range(r):
                        acc += g[i, a] * t[a, j]
                    u[n * i + j, f, c] = acc


@njit(**KERNEL)
def filter_grad_n(du, g, dw, work):
    """``dw[f, c]`` = Gᵀ dU[·, f, c] G, the adjoint of :func:`filter_transform_n`, as (dU G) first."""
    n_f, n_c, r = dw.shape[0], dw.shape[1], dw.shape[2]
    n = g.shape[0]
    t = work[:n * r].reshape((n, r))
    for f in range(n_f):
        for c in range(n_c):
            for i in range(n):                       # dU G
                for b in range(r):
                    acc = 0.0
                    for j in range(n):
                        acc += du[n * i + j, f, c] * g[j, b]
                    t[i, b] = acc
            for a in range(r):                       # Gᵀ (dU G)
                for b in range(r):
                    acc = 0.0
                    for i in range(n):
                        acc += g[i, a] * t[i, b]
                    dw[f, c, a, b] = acc


@njit(inline="always")
def _x2(a):
    return a + a


@njit(inline="always")
def _x4(a):
    return _x2(a + a)


@njit(inline="always")
def _bt5(d0, d1, d2, d3, d4, d5):
    """Bᵀ d of F(2, 5) (the rows of Bᵀ from ``matrices(5)``, written out).  Multiples as sums (4·a as
    (a + a) + (a + a), exact) so that float32 stays float32: numba types an integer times a float32 as float64."""
    return (_x4(d0) - _x4(d2) - d2 + d4, d3 + d4 - _x4(d1 + d2), d4 - d3 + _x4(d1 - d2),
            d4 - d2 + _x2(d3 - d1), d4 - d2 + _x2(d1 - d3), _x4(d1) - _x4(d3) - d3 + d5)


@njit(inline="always")
def _b5(e0, e1, e2, e3, e4, e5):
    """B e of F(2, 5), the adjoint of :func:`_bt5`."""
    return (_x4(e0), _x4(e2 - e1 + e5) + _x2(e4 - e3), -_x4(e0) - e0 - _x4(e1 + e2) - e3 - e4,
            e1 - e2 + _x2(e3 - e4) - _x4(e5) - e5, e0 + e1 + e2 + e3 + e4, e5)


@njit(**KERNEL)
def input_transform5(x, ph, pw, th, tw, v, work):
    """:func:`input_transform` for F(2×2, 5×5): 6×6 tiles, 36 positions k = 6·row + column."""
    n_img, n_c, h, w = x.shape
    tt, plane = th * tw, (th + 2) * tw
    rows, cols = 2 * th + 4, 2 * tw + 4
    r = work[:12 * plane].reshape((6, 2, plane))
    xp = work[12 * plane:12 * plane + rows * cols].reshape((rows, cols))
    xp[...] = 0.0
    for n in range(n_img):
        p0 = n * tt
        for c in range(n_c):
            _pad_into(x[n, c], ph, pw, xp)
            for y in range(rows):                            # d B, row by row
                par, o, row = y % 2, (y // 2) * tw, xp[y]
                for t in range(tw):
                    b0, b1, b2, b3, b4, b5 = _bt5(row[2 * t], row[2 * t + 1], row[2 * t + 2], row[2 * t + 3],
                                                  row[2 * t + 4], row[2 * t + 5])
                    r[0, par, o + t] = b0
                    r[1, par, o + t] = b1
                    r[2, par, o + t] = b2
                    r[3, par, o + t] = b3
                    r[4, par, o + t] = b4
                    r[5, par, o + t] = b5
            for j in range(6):                               # Bᵀ (d B): rows 2·ty … 2·ty + 5
                ev, od = r[j, 0], r[j, 1]
                for q in range(tt):
                    b0, b1, b2, b3, b4, b5 = _bt5(ev[q], od[q], ev[q + tw], od[q + tw], ev[q + 2 * tw],
                                                  od[q + 2 * tw])
                    v[j, c, p0 + q] = b0
                    v[6 + j, c, p0 + q] = b1
                    v[12 + j, c, p0 + q] = b2
                    v[18 + j, c, p0 + q] = b3
                    v[24 + j, c, p0 + q] = b4
                    v[30 + j, c, p0 + q] = b5


@njit(**KERNEL)
def input_grad5(dv, ph, pw, th, tw, dx, work):
    """The adjoint of :func:`input_transform5`: ``dx`` (written whole) from the gradient of V."""
    n_img, n_c, h, w = dx.shape
    tt, plane = th * tw, (th + 2) * tw
    cols = 2 * tw + 4
    r = work[:12 * plane].reshape((6, 2, plane))
    row = work[12 * plane:12 * plane + cols]
    e = work[12 * plane + cols:12 * plane + cols + 6 * tt].reshape((6, tt))
    for n in range(n_img):
        p0 = n * tt
        for c in range(n_c):
            for j in range(6):                               # adjoint of Bᵀ (d B): B dV per tile, then
                ev, od = r[j, 0], r[j, 1]                    # added at shifts of 0, 1, 2 tile rows
                for q in range(tt):
                    e0, e1, e2, e3, e4, e5 = _b5(dv[j, c, p0 + q], dv[6 + j, c, p0 + q], dv[12 + j, c, p0 + q],
                                                 dv[18 + j, c, p0 + q], dv[24 + j, c, p0 + q], dv[30 + j, c, p0 + q])
                    e[0, q], e[1, q], e[2, q] = e0, e1, e2
                    e[3, q], e[4, q], e[5, q] = e3, e4, e5
                ev[:] = 0.0
                od[:] = 0.0
                for s in range(3):
                    o, te, to = s * tw, e[2 * s], e[2 * s + 1]
                    for q in range(tt):
                        ev[o + q] += te[q]
                        od[o + q] += to[q]
            for y in range(ph, ph + h):                      # adjoint of d B, the rows inside dx
                par, o = y % 2, (y // 2) * tw
                row[:] = 0.0
                for t in range(tw):
                    e0, e1, e2, e3, e4, e5 = _b5(r[0, par, o + t], r[1, par, o + t], r[2, par, o + t],
                                                 r[3, par, o + t], r[4, par, o + t], r[5, par, o + t])
                    row[2 * t] += e0
                    row[2 * t + 1] += e1
                    row[2 * t + 2] += e2
                    row[2 * t + 3] += e3
                    row[2 * t + 4] += e4
                    row[2 * t + 5] += e5
                for xx in range(w):
                    dx[n, c, y - ph, xx] = row[xx + pw]


@njit(**KERNEL)
def output_transform5(m, bias, use_bias, relu, th, tw, y, work):
    """:func:`output_transform` for F(2×2, 5×5): Aᵀ rows (1, 1, 1, 1, 1, 0) and (0, 1, −1, 2, −2, 1)."""
    n_img, n_f, oh, ow = y.shape
    tt = th * tw
    zero = y.dtype.type(0.0)
    t = work[:12 * tt].reshape((2, 6, tt))
    out = work[12 * tt:16 * tt].reshape((4, tt))
    for n in range(n_img):
        p0 = n * tt
        for f in range(n_f):
            b = bias[f] if use_bias else zero
            for j in range(6):                               # Aᵀ M, column j: six rows of M per loop
                t0, t1 = t[0, j], t[1, j]
                for q in range(tt):
                    m0, m1, m2, m3, m4, m5 = (m[j, f, p0 + q], m[6 + j, f, p0 + q], m[12 + j, f, p0 + q],
                                              m[18 + j, f, p0 + q], m[24 + j, f, p0 + q], m[30 + j, f, p0 + q])
                    t0[q] = m0 + m1 + m2 + m3 + m4
                    t1[q] = m1 - m2 + _x2(m3 - m4) + m5
            for a in range(2):                               # (Aᵀ M) A, the bias, the ReLU
                ta = t[a]
                for q in range(tt):
                    o0 = ta[0, q] + ta[1, q] + ta[2, q] + ta[3, q] + ta[4, q] + b
                    o1 = ta[1, q] - ta[2, q] + _x2(ta[3, q] - ta[4, q]) + ta[5, q] + b
                    if relu:
                        o0, o1 = max(o0, zero), max(o1, zero)
                    out[2 * a, q] = o0
                    out[2 * a + 1, q] = o1
            _place_tiles(out, tw, y[n, f])


@njit(**KERNEL)
def output_grad5(dy, y, relu, th, tw, dm, db, use_bias, work):
    """:func:`output_grad` for F(2×2, 5×5): dM = A e Aᵀ with A's rows (1, 0), (1, 1), (1, −1), (1, 2),
    (1, −2), (0, 1)."""
    n_img, n_f, oh, ow = dy.shape
    zero, one = dy.dtype.type(0.0), dy.dtype.type(1.0)
    tt = th * tw
    gs = work[:4 * tt * OUT_BLOCK].reshape((OUT_BLOCK, 4, tt))
    if 2 * th != oh or 2 * tw != ow:
        gs[...] = zero
    for n in range(n_img):
        p0 = n * tt
        for f0 in range(0, n_f, OUT_BLOCK):
            for f in range(f0, min(n_f, f0 + OUT_BLOCK)):
                acc = _gather_tiles(dy[n, f], y[n, f], relu, tw, gs[f - f0])
                if use_bias:
                    db[f] += acc
            for f in range(f0, min(n_f, f0 + OUT_BLOCK)):
                g = gs[f - f0]
                for i in range(6):                           # row i of A: (c0, c1)
                    c0 = zero if i == 5 else one
                    c1 = zero if i == 0 else (one if i == 1 or i == 5 else
                                              (-one if i == 2 else (one + one if i == 3 else -one - one)))
                    for q in range(tt):
                        r0 = c0 * g[0, q] + c1 * g[2, q]     # (A e)[i], columns 0 and 1 of the tile
                        r1 = c0 * g[1, q] + c1 * g[3, q]
                        dm[6 * i, f, p0 + q] = r0
                        dm[6 * i + 1, f, p0 + q] = r0 + r1
                        dm[6 * i + 2, f, p0 + q] = r0 - r1
                        dm[6 * i + 3, f, p0 + q] = r0 + _x2(r1)
                        dm[6 * i + 4, f, p0 + q] = r0 - _x2(r1)
                        dm[6 * i + 5, f, p0 + q] = r1
