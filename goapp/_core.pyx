# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""The rules of Go, fast: board, chains, liberties, captures, ko, hashing, scoring helpers.

This module is the hot path of goapp. It follows KataGo's board design
(``cpp/game/board.h``): a flat array with a one-cell border of off-board cells, every
chain stored as a circular linked list whose *head* holds the chain's stone and liberty
counts, liberties maintained incrementally on each play and capture (no flood fill per
move), and a 64-bit Zobrist hash of the position.

Locations ("locs") are ints: ``loc = (x + 1) + (y + 1) * (width + 1)`` where ``x`` is the
column from the left and ``y`` the row from the *top* (as in KataGo and SGF). ``PASS_LOC``
(1) means a pass and ``NULL_LOC`` (0) means "no location". Colours are ints: ``EMPTY`` (0),
``BLACK`` (1), ``WHITE`` (2); ``WALL`` (3) marks off-board cells.

The Python-facing API with rules, turn order, superko and scoring lives in
:mod:`goapp.rules`; this module only knows about stones.
"""

from libc.stdint cimport int16_t, int64_t, uint64_t
from libc.string cimport memset

# The error classes live in goapp.rules.errors; importing them here at module load would be
# circular (goapp.rules imports this module), so the error paths fetch them on first use.
cdef object _errors_module = None


cdef object _errors():
    global _errors_module
    if _errors_module is None:
        import goapp.rules.errors
        _errors_module = goapp.rules.errors
    return _errors_module

cdef enum:
    MAX_SIZE = 25
    MAX_STRIDE = 26
    MAX_ARR = 703  # MAX_STRIDE * (MAX_SIZE + 2) + 1
    C_EMPTY = 0
    C_BLACK = 1
    C_WHITE = 2
    C_WALL = 3
    C_NULL_LOC = 0
    C_PASS_LOC = 1

# Legality codes (see Board.legality)
cdef enum:
    LEGAL = 0
    ILLEGAL_OFF_BOARD = 1
    ILLEGAL_OCCUPIED = 2
    ILLEGAL_KO = 3
    ILLEGAL_SUICIDE = 4
    ILLEGAL_COLOR = 5

EMPTY = C_EMPTY
BLACK = C_BLACK
WHITE = C_WHITE
WALL = C_WALL
NULL_LOC = C_NULL_LOC
PASS_LOC = C_PASS_LOC
MAX_BOARD_SIZE = MAX_SIZE
MIN_BOARD_SIZE = 2
LEGALITY_OK = LEGAL
LEGALITY_OFF_BOARD = ILLEGAL_OFF_BOARD
LEGALITY_OCCUPIED = ILLEGAL_OCCUPIED
LEGALITY_KO = ILLEGAL_KO
LEGALITY_SUICIDE = ILLEGAL_SUICIDE
LEGALITY_BAD_COLOR = ILLEGAL_COLOR

GTP_COLUMNS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"  # no I, 25 letters


ctypedef struct BoardData:
    int width
    int height
    int stride
    int arr_size
    int ko_loc      # NULL_LOC when there is no ko
    int ko_color    # the player who may not play at ko_loc
    int captures[3]  # captures[c]: stones captured BY colour c (c's prisoners)
    uint64_t hash
    int adj[4]
    int diag[4]
    signed char colors[MAX_ARR]
    int16_t head[MAX_ARR]
    int16_t nxt[MAX_ARR]
    int16_t nstones[MAX_ARR]  # valid at chain heads
    int16_t nlibs[MAX_ARR]    # valid at chain heads


# ---------------------------------------------------------------------------------------
# Zobrist hashing: a fixed table from splitmix64 with a fixed seed, so hashes are the same
# in every process and every run (they may be stored).

cdef inline uint64_t splitmix64(uint64_t* state) noexcept nogil:
    cdef uint64_t z
    state[0] += <uint64_t>0x9E3779B97F4A7C15ULL
    z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef uint64_t ZOBRIST_STONE[3][MAX_ARR]
cdef uint64_t ZOBRIST_PLAYER[3]
cdef uint64_t ZOBRIST_SIZE[MAX_SIZE + 1][MAX_SIZE + 1]


cdef void _init_zobrist() noexcept:
    cdef uint64_t st = <uint64_t>0x676F617070ULL  # "goapp"
    cdef int c, i, j
    for c in range(3):
        for i in range(MAX_ARR):
            ZOBRIST_STONE[c][i] = splitmix64(&st) if c != C_EMPTY else 0
    ZOBRIST_PLAYER[0] = 0
    ZOBRIST_PLAYER[1] = splitmix64(&st)
    ZOBRIST_PLAYER[2] = splitmix64(&st)
    for i in range(MAX_SIZE + 1):
        for j in range(MAX_SIZE + 1):
            ZOBRIST_SIZE[i][j] = splitmix64(&st)


_init_zobrist()


def zobrist_player(int color):
    """The hash term XORed in for ``color`` to move (used for situational superko)."""
    if color != C_BLACK and color != C_WHITE:
        raise ValueError(f"color must be BLACK (1) or WHITE (2), not {color!r}")
    return ZOBRIST_PLAYER[color]


# ---------------------------------------------------------------------------------------
# Low-level board operations on a BoardData*. All are nogil and never allocate.

cdef void bd_init(BoardData* b, int width, int height) noexcept nogil:
    cdef int x, y, loc
    b.width = width
    b.height = height
    b.stride = width + 1
    b.arr_size = (width + 1) * (height + 2) + 1
    b.ko_loc = C_NULL_LOC
    b.ko_color = C_EMPTY
    b.captures[0] = 0
    b.captures[1] = 0
    b.captures[2] = 0
    b.hash = ZOBRIST_SIZE[width][height]
    b.adj[0] = -b.stride
    b.adj[1] = -1
    b.adj[2] = 1
    b.adj[3] = b.stride
    b.diag[0] = -b.stride - 1
    b.diag[1] = -b.stride + 1
    b.diag[2] = b.stride - 1
    b.diag[3] = b.stride + 1
    memset(b.colors, C_WALL, sizeof(b.colors))
    memset(b.head, 0, sizeof(b.head))
    memset(b.nxt, 0, sizeof(b.nxt))
    memset(b.nstones, 0, sizeof(b.nstones))
    memset(b.nlibs, 0, sizeof(b.nlibs))
    for y in range(height):
        for x in range(width):
            loc = (x + 1) + (y + 1) * b.stride
            b.colors[loc] = C_EMPTY


cdef inline bint bd_on_board(const BoardData* b, int loc) noexcept nogil:
    return 0 <= loc < b.arr_size and b.colors[loc] != C_WALL


cdef inline bint bd_is_suicide(const BoardData* b, int loc, int pla) noexcept nogil:
    """True if a stone of ``pla`` at empty ``loc`` would have no liberties after captures."""
    cdef int o = 3 - pla
    cdef int i, a, c
    for i in range(4):
        a = loc + b.adj[i]
        c = b.colors[a]
        if c == C_EMPTY:
            return False
        if c == pla:
            if b.nlibs[b.head[a]] > 1:
                return False
        elif c == o:
            if b.nlibs[b.head[a]] == 1:
                return False
    return True


cdef inline bint bd_has_own_neighbor(const BoardData* b, int loc, int pla) noexcept nogil:
    cdef int i
    for i in range(4):
        if b.colors[loc + b.adj[i]] == pla:
            return True
    return False


cdef inline int bd_legality(const BoardData* b, int loc, int pla, bint multi_suicide) noexcept nogil:
    if pla != C_BLACK and pla != C_WHITE:
        return ILLEGAL_COLOR
    if loc < 0 or loc >= b.arr_size or b.colors[loc] == C_WALL:
        return ILLEGAL_OFF_BOARD
    if b.colors[loc] != C_EMPTY:
        return ILLEGAL_OCCUPIED
    if loc == b.ko_loc and pla == b.ko_color:
        return ILLEGAL_KO
    if bd_is_suicide(b, loc, pla):
        # Single-stone suicide is never legal (it would be a pass that changes nothing).
        if not multi_suicide or not bd_has_own_neighbor(b, loc, pla):
            return ILLEGAL_SUICIDE
    return LEGAL


cdef inline bint bd_is_simple_eye(const BoardData* b, int loc, int pla) noexcept nogil:
    """KataGo's isSimpleEye: all four neighbours are ``pla`` or off-board, and the opponent
    holds fewer than two diagonals (fewer than one when against the edge)."""
    cdef int i, c
    cdef bint wall = False
    cdef int opp_corners = 0
    cdef int o = 3 - pla
    if b.colors[loc] != C_EMPTY:
        return False
    for i in range(4):
        c = b.colors[loc + b.adj[i]]
        if c == C_WALL:
            wall = True
        elif c != pla:
            return False
    for i in range(4):
        if b.colors[loc + b.diag[i]] == o:
            opp_corners += 1
    if opp_corners >= 2:
        return False
    if wall and opp_corners >= 1:
        return False
    return True


cdef inline void bd_change_libs(BoardData* b, int loc, int color, int delta) noexcept nogil:
    """Add ``delta`` liberties to each distinct chain of ``color`` next to ``loc``."""
    cdef int a, h
    cdef int h0 = -1, h1 = -1, h2 = -1
    a = loc + b.adj[0]
    if b.colors[a] == color:
        h0 = b.head[a]
        b.nlibs[h0] += delta
    a = loc + b.adj[1]
    if b.colors[a] == color:
        h1 = b.head[a]
        if h1 != h0:
            b.nlibs[h1] += delta
    a = loc + b.adj[2]
    if b.colors[a] == color:
        h2 = b.head[a]
        if h2 != h0 and h2 != h1:
            b.nlibs[h2] += delta
    a = loc + b.adj[3]
    if b.colors[a] == color:
        h = b.head[a]
        if h != h0 and h != h1 and h != h2:
            b.nlibs[h] += delta


cdef inline bint bd_is_liberty_of(const BoardData* b, int loc, int h, int color) noexcept nogil:
    cdef int i, a
    for i in range(4):
        a = loc + b.adj[i]
        if b.colors[a] == color and b.head[a] == h:
            return True
    return False


cdef inline int bd_immediate_libs(const BoardData* b, int loc) noexcept nogil:
    cdef int i, n = 0
    for i in range(4):
        if b.colors[loc + b.adj[i]] == C_EMPTY:
            n += 1
    return n


cdef void bd_merge(BoardData* b, int loc1, int loc2) noexcept nogil:
    cdef int h1 = b.head[loc1]
    cdef int h2 = b.head[loc2]
    cdef int t, cur, i, a, newlibs = 0
    cdef int color = b.colors[h1]
    if h1 == h2:
        return
    if b.nstones[h1] < b.nstones[h2]:
        t = h1
        h1 = h2
        h2 = t
    b.nstones[h1] += b.nstones[h2]
    cur = h2
    while True:
        for i in range(4):
            a = cur + b.adj[i]
            if b.colors[a] == C_EMPTY and not bd_is_liberty_of(b, a, h1, color):
                newlibs += 1
        b.head[cur] = h1
        if b.nxt[cur] == h2:
            break
        cur = b.nxt[cur]
    b.nlibs[h1] += newlibs
    b.nxt[cur] = b.nxt[h1]
    b.nxt[h1] = h2


cdef int bd_remove_chain(BoardData* b, int loc) noexcept nogil:
    cdef int color = b.colors[loc]
    cdef int o = 3 - color
    cdef int cur = loc
    cdef int n = 0
    while True:
        b.hash ^= ZOBRIST_STONE[color][cur]
        b.colors[cur] = C_EMPTY
        n += 1
        bd_change_libs(b, cur, o, 1)
        cur = b.nxt[cur]
        if cur == loc:
            break
    return n


cdef int bd_play(BoardData* b, int loc, int pla, int* capdirs) noexcept nogil:
    """Play a stone assumed legal (multi-stone suicide is carried out). Returns the number
    of opponent stones captured, or minus the number of own stones lost to suicide.
    ``capdirs`` (may be NULL) receives a bitmask of the directions of captured chains."""
    cdef int o = 3 - pla
    cdef int i, a, h, n
    cdef int captured = 0
    cdef int ko_candidate = C_NULL_LOC
    cdef int dirs = 0
    b.colors[loc] = pla
    b.hash ^= ZOBRIST_STONE[pla][loc]
    b.head[loc] = loc
    b.nxt[loc] = loc
    b.nstones[loc] = 1
    b.nlibs[loc] = bd_immediate_libs(b, loc)
    bd_change_libs(b, loc, pla, -1)
    bd_change_libs(b, loc, o, -1)
    for i in range(4):
        a = loc + b.adj[i]
        if b.colors[a] == pla:
            bd_merge(b, loc, a)
        elif b.colors[a] == o:
            h = b.head[a]
            if b.nlibs[h] == 0:
                captured += bd_remove_chain(b, h)
                ko_candidate = a
                dirs |= 1 << i
    if capdirs != NULL:
        capdirs[0] = dirs
    b.captures[pla] += captured
    h = b.head[loc]
    if captured == 0 and b.nlibs[h] == 0:
        # Multi-stone suicide: the whole chain goes to the opponent as prisoners.
        n = bd_remove_chain(b, h)
        b.captures[o] += n
        b.ko_loc = C_NULL_LOC
        b.ko_color = C_EMPTY
        return -n
    if captured == 1 and b.nstones[h] == 1 and b.nlibs[h] == 1:
        b.ko_loc = ko_candidate
        b.ko_color = o
    else:
        b.ko_loc = C_NULL_LOC
        b.ko_color = C_EMPTY
    return captured


cdef uint64_t bd_hash_after(const BoardData* b, int loc, int pla) noexcept nogil:
    """Position hash after ``pla`` plays at ``loc`` (assumed legal), without playing."""
    cdef uint64_t h = b.hash ^ ZOBRIST_STONE[pla][loc]
    cdef int o = 3 - pla
    cdef int seen[4]
    cdef int nseen = 0
    cdef int i, j, a, hd, cur
    cdef bint dup, captured = False
    for i in range(4):
        a = loc + b.adj[i]
        if b.colors[a] == o and b.nlibs[b.head[a]] == 1:
            hd = b.head[a]
            dup = False
            for j in range(nseen):
                if seen[j] == hd:
                    dup = True
            if dup:
                continue
            seen[nseen] = hd
            nseen += 1
            captured = True
            cur = hd
            while True:
                h ^= ZOBRIST_STONE[o][cur]
                cur = b.nxt[cur]
                if cur == hd:
                    break
    if not captured and bd_is_suicide(b, loc, pla):
        h ^= ZOBRIST_STONE[pla][loc]
        nseen = 0
        for i in range(4):
            a = loc + b.adj[i]
            if b.colors[a] == pla:
                hd = b.head[a]
                dup = False
                for j in range(nseen):
                    if seen[j] == hd:
                        dup = True
                if dup:
                    continue
                seen[nseen] = hd
                nseen += 1
                cur = hd
                while True:
                    h ^= ZOBRIST_STONE[pla][cur]
                    cur = b.nxt[cur]
                    if cur == hd:
                        break
    return h


# Scratch marks for flood fills (undo, consistency checks, scoring). The GIL protects them.
cdef int MARK[MAX_ARR]
cdef int MARK_EPOCH = 0
cdef int DONE[MAX_ARR]
cdef int DONE_EPOCH = 0


cdef inline int next_mark() noexcept nogil:
    global MARK_EPOCH
    cdef int i
    MARK_EPOCH += 1
    if MARK_EPOCH > 2000000000:
        for i in range(MAX_ARR):
            MARK[i] = 0
        MARK_EPOCH = 1
    return MARK_EPOCH


cdef inline int next_done() noexcept nogil:
    global DONE_EPOCH
    cdef int i
    DONE_EPOCH += 1
    if DONE_EPOCH > 2000000000:
        for i in range(MAX_ARR):
            DONE[i] = 0
        DONE_EPOCH = 1
    return DONE_EPOCH


cdef void bd_rebuild_chain(BoardData* b, int seed, int done_epoch) noexcept nogil:
    """Recompute the chain containing ``seed`` from scratch (flood fill): heads, the
    circular list, stone and liberty counts. Marks its stones in DONE with done_epoch."""
    cdef int16_t stack[MAX_ARR]
    cdef int sp = 0
    cdef int color = b.colors[seed]
    cdef int m = next_mark()
    cdef int cur, i, a, prev
    cdef int nst = 0, nl = 0
    stack[sp] = seed
    sp += 1
    MARK[seed] = m
    prev = seed
    b.head[seed] = seed
    while sp > 0:
        sp -= 1
        cur = stack[sp]
        DONE[cur] = done_epoch
        nst += 1
        b.head[cur] = seed
        if cur != seed:
            b.nxt[prev] = cur
            prev = cur
        for i in range(4):
            a = cur + b.adj[i]
            if MARK[a] == m:
                continue
            if b.colors[a] == color:
                MARK[a] = m
                stack[sp] = a
                sp += 1
            elif b.colors[a] == C_EMPTY:
                MARK[a] = m
                nl += 1
    b.nxt[prev] = seed
    b.nstones[seed] = nst
    b.nlibs[seed] = nl


cdef int bd_fill_region(BoardData* b, int seed, int color, int16_t* out) noexcept nogil:
    """Flood fill the empty region containing ``seed``, setting it to ``color``. Returns the
    number of points; their locs go to ``out``."""
    cdef int16_t stack[MAX_ARR]
    cdef int sp = 0, n = 0, cur, i, a
    cdef int m = next_mark()
    stack[0] = seed
    sp = 1
    MARK[seed] = m
    while sp > 0:
        sp -= 1
        cur = stack[sp]
        out[n] = cur
        n += 1
        for i in range(4):
            a = cur + b.adj[i]
            if b.colors[a] == C_EMPTY and MARK[a] != m:
                MARK[a] = m
                stack[sp] = a
                sp += 1
    for i in range(n):
        b.colors[out[i]] = color
        b.hash ^= ZOBRIST_STONE[color][out[i]]
    return n


# Undo records are packed into one int64:
#   bits 0-9 loc, 10-11 colour, 12-21 previous ko loc, 22-23 previous ko colour,
#   24-27 capture directions, 28 suicide flag.

cdef inline int64_t pack_record(int loc, int color, int ko_loc, int ko_color, int dirs,
                                bint suicide) noexcept nogil:
    return (<int64_t>loc | (<int64_t>color << 10) | (<int64_t>ko_loc << 12)
            | (<int64_t>ko_color << 22) | (<int64_t>dirs << 24) | (<int64_t>suicide << 28))


cdef void bd_undo(BoardData* b, int64_t rec) noexcept nogil:
    cdef int loc = rec & 1023
    cdef int pla = (rec >> 10) & 3
    cdef int ko_loc = (rec >> 12) & 1023
    cdef int ko_color = (rec >> 22) & 3
    cdef int dirs = (rec >> 24) & 15
    cdef bint suicide = (rec >> 28) & 1
    cdef int o = 3 - pla
    cdef int16_t changed[MAX_ARR]
    cdef int nchanged = 0
    cdef int i, j, a, n, d, p
    b.ko_loc = ko_loc
    b.ko_color = ko_color
    if loc == C_PASS_LOC:
        return
    if suicide:
        # The suicided chain (with loc) is an empty region bounded by opponent stones.
        n = bd_fill_region(b, loc, pla, changed)
        b.captures[o] -= n
        b.colors[loc] = C_EMPTY
        b.hash ^= ZOBRIST_STONE[pla][loc]
        nchanged = n
    else:
        for i in range(4):
            if dirs & (1 << i):
                a = loc + b.adj[i]
                n = bd_fill_region(b, a, o, changed + nchanged)
                b.captures[pla] -= n
                nchanged += n
        b.colors[loc] = C_EMPTY
        b.hash ^= ZOBRIST_STONE[pla][loc]
        changed[nchanged] = loc
        nchanged += 1
    d = next_done()
    for j in range(nchanged):
        p = changed[j]
        if b.colors[p] != C_EMPTY and DONE[p] != d:
            bd_rebuild_chain(b, p, d)
        for i in range(4):
            a = p + b.adj[i]
            if (b.colors[a] == C_BLACK or b.colors[a] == C_WHITE) and DONE[a] != d:
                bd_rebuild_chain(b, a, d)


cdef inline int uf_find(int16_t* uf, int x) noexcept nogil:
    cdef int root = x, nxt
    while uf[root] != root:
        root = uf[root]
    while uf[x] != root:
        nxt = uf[x]
        uf[x] = root
        x = nxt
    return root


cdef int bd_collect_empty(const BoardData* b, int16_t* out) noexcept nogil:
    cdef int x, y, loc, n = 0
    for y in range(b.height):
        loc = 1 + (y + 1) * b.stride
        for x in range(b.width):
            if b.colors[loc + x] == C_EMPTY:
                out[n] = loc + x
                n += 1
    return n


cdef str _vertex(int width, int height, int loc):
    cdef int stride = width + 1
    cdef int x, y
    if loc == C_PASS_LOC:
        return "pass"
    x = loc % stride - 1
    y = loc // stride - 1
    if x < 0 or x >= width or y < 0 or y >= height:
        return f"<off-board loc {loc}>"
    return f"{GTP_COLUMNS[x]}{height - y}"


cdef class Board:
    """A Go board of any size from 2x2 to 25x25 (rectangles too), with stones, chains,
    liberties, captures and the simple-ko point. It knows nothing about turn order, superko
    or scoring rules: :class:`goapp.rules.Game` adds those.

    >>> b = Board(9)
    >>> b.play(b.loc(2, 2), BLACK)   # C7 (x=2 from the left, y=2 from the top)
    0
    >>> b.vertex(b.loc(2, 2))
    'C7'

    Fast methods take and return int locs (see :meth:`loc`, :meth:`xy`). :meth:`play` checks
    legality and raises a subclass of :class:`goapp.rules.IllegalMoveError`;
    :meth:`play_fast` trusts the caller. ``allow_suicide`` permits *multi-stone* suicide
    (single-stone suicide is never legal, as in KataGo).
    """

    cdef BoardData b

    def __init__(self, int width=19, height=None):
        cdef int h = width if height is None else height
        if not (2 <= width <= MAX_SIZE and 2 <= h <= MAX_SIZE):
            raise ValueError(
                f"board size must be between 2 and {MAX_SIZE}, not {width}x{h}"
            )
        bd_init(&self.b, width, h)

    # -- geometry ------------------------------------------------------------------------

    @property
    def width(self):
        """Number of columns."""
        return self.b.width

    @property
    def height(self):
        """Number of rows."""
        return self.b.height

    @property
    def stride(self):
        """Distance between vertically adjacent locs (``width + 1``)."""
        return self.b.stride

    @property
    def arr_size(self):
        """Size of the padded array: every loc is ``0 <= loc < arr_size``."""
        return self.b.arr_size

    cpdef int loc(self, int x, int y) except -1:
        """The loc of column ``x`` (0 = left) and row ``y`` (0 = top)."""
        if not (0 <= x < self.b.width and 0 <= y < self.b.height):
            raise _errors().OffBoardError(
                f"({x}, {y}) is not on the {self.b.width}x{self.b.height} board"
            )
        return (x + 1) + (y + 1) * self.b.stride

    def xy(self, int loc):
        """The ``(x, y)`` of an on-board loc (``y`` = 0 is the top row)."""
        if not bd_on_board(&self.b, loc):
            raise _errors().OffBoardError(f"loc {loc} is not on the {self.b.width}x{self.b.height} board")
        return (loc % self.b.stride - 1, loc // self.b.stride - 1)

    cpdef bint is_on_board(self, int loc):
        """True for locs of board points (not padding, not pass)."""
        return bd_on_board(&self.b, loc)

    def vertex(self, int loc):
        """GTP name of a loc: ``"D4"`` (columns skip I, row 1 at the bottom) or ``"pass"``."""
        return _vertex(self.b.width, self.b.height, loc)

    def all_locs(self):
        """Every on-board loc, row by row from the top-left."""
        cdef int x, y
        return [(x + 1) + (y + 1) * self.b.stride
                for y in range(self.b.height) for x in range(self.b.width)]

    # -- state ---------------------------------------------------------------------------

    cpdef int get(self, int loc):
        """Colour at ``loc`` (EMPTY, BLACK, WHITE; WALL off the board)."""
        if loc < 0 or loc >= self.b.arr_size:
            return C_WALL
        return self.b.colors[loc]

    def __getitem__(self, xy):
        """``board[x, y]`` is the colour at column x, row y (from the top)."""
        x, y = xy
        return self.b.colors[self.loc(x, y)]

    @property
    def ko_loc(self):
        """The simple-ko point (NULL_LOC if none): :attr:`ko_color` may not play there."""
        return self.b.ko_loc

    @property
    def ko_color(self):
        """The player banned from :attr:`ko_loc` (EMPTY if there is no ko)."""
        return self.b.ko_color

    @property
    def hash(self):
        """64-bit Zobrist hash of the stones (and board size); not of ko or captures."""
        return self.b.hash

    cpdef int captures(self, int color):
        """Number of stones captured *by* ``color`` (its prisoners)."""
        if color != C_BLACK and color != C_WHITE:
            raise ValueError(f"color must be BLACK (1) or WHITE (2), not {color!r}")
        return self.b.captures[color]

    def set_captures(self, int black, int white):
        """Set the capture counts (for setting up a position)."""
        self.b.captures[C_BLACK] = black
        self.b.captures[C_WHITE] = white

    cpdef int chain_liberties(self, int loc):
        """Liberties of the chain at ``loc`` (0 for an empty point)."""
        if not bd_on_board(&self.b, loc) or self.b.colors[loc] == C_EMPTY:
            return 0
        return self.b.nlibs[self.b.head[loc]]

    cpdef int chain_size(self, int loc):
        """Number of stones in the chain at ``loc`` (0 for an empty point)."""
        if not bd_on_board(&self.b, loc) or self.b.colors[loc] == C_EMPTY:
            return 0
        return self.b.nstones[self.b.head[loc]]

    cpdef int chain_head(self, int loc):
        """Identifier of the chain at ``loc`` (a loc of one of its stones); NULL_LOC if empty."""
        if not bd_on_board(&self.b, loc) or self.b.colors[loc] == C_EMPTY:
            return C_NULL_LOC
        return self.b.head[loc]

    def chain(self, int loc):
        """Locs of the chain containing ``loc`` (empty list for an empty point)."""
        if not bd_on_board(&self.b, loc) or self.b.colors[loc] == C_EMPTY:
            return []
        cdef int h = self.b.head[loc]
        cdef int cur = h
        out = []
        while True:
            out.append(cur)
            cur = self.b.nxt[cur]
            if cur == h:
                break
        return out

    def stones(self, int color):
        """Locs of every stone of ``color``, in row-major order from the top-left."""
        cdef int x, y, loc
        out = []
        for y in range(self.b.height):
            for x in range(self.b.width):
                loc = (x + 1) + (y + 1) * self.b.stride
                if self.b.colors[loc] == color:
                    out.append(loc)
        return out

    def empty_points(self):
        """Locs of every empty point, row-major from the top-left."""
        return self.stones(C_EMPTY)

    cpdef int num_stones(self, int color):
        cdef int x, y, n = 0
        for y in range(self.b.height):
            for x in range(self.b.width):
                if self.b.colors[(x + 1) + (y + 1) * self.b.stride] == color:
                    n += 1
        return n

    # -- moves ---------------------------------------------------------------------------

    cpdef int legality(self, int loc, int color, bint allow_suicide=False):
        """Why a move is illegal: one of the ``LEGALITY_*`` codes (0 means legal)."""
        if loc == C_PASS_LOC:
            return LEGAL if (color == C_BLACK or color == C_WHITE) else ILLEGAL_COLOR
        return bd_legality(&self.b, loc, color, allow_suicide)

    cpdef bint is_legal(self, int loc, int color, bint allow_suicide=False):
        """True if ``color`` may play at ``loc`` (passing is always legal)."""
        if loc == C_PASS_LOC:
            return color == C_BLACK or color == C_WHITE
        return bd_legality(&self.b, loc, color, allow_suicide) == LEGAL

    cpdef bint is_suicide(self, int loc, int color):
        """True if a stone at empty ``loc`` would have no liberties after captures."""
        if not bd_on_board(&self.b, loc) or self.b.colors[loc] != C_EMPTY:
            return False
        return bd_is_suicide(&self.b, loc, color)

    cpdef bint is_simple_eye(self, int loc, int color):
        """KataGo's ``isSimpleEye``: filling it would be pointless for ``color``."""
        if not bd_on_board(&self.b, loc):
            return False
        return bd_is_simple_eye(&self.b, loc, color)

    cdef int _raise_illegal(self, int code, int loc, int color) except -1:
        v = _vertex(self.b.width, self.b.height, loc)
        if code == ILLEGAL_COLOR:
            raise ValueError(f"color must be BLACK (1) or WHITE (2), not {color!r}")
        if code == ILLEGAL_OFF_BOARD:
            raise _errors().OffBoardError(
                f"{v} is not on the {self.b.width}x{self.b.height} board",
                vertex=None, color=color,
            )
        if code == ILLEGAL_OCCUPIED:
            raise _errors().OccupiedError(f"{v} is already occupied", vertex=v, color=color)
        if code == ILLEGAL_KO:
            raise _errors().KoError(
                f"{v} would recapture the ko immediately; play elsewhere first",
                vertex=v, color=color,
            )
        if code == ILLEGAL_SUICIDE:
            if bd_has_own_neighbor(&self.b, loc, color):
                msg = f"{v} would be suicide: your stones there would have no liberties left"
            else:
                msg = f"{v} would be suicide: the stone would have no liberties"
            raise _errors().SuicideError(msg, vertex=v, color=color)
        raise ValueError(f"illegal move {v} (code {code})")

    cpdef int play(self, int loc, int color, bint allow_suicide=False) except -1:
        """Play a checked move; returns the number of stones captured (0 for a pass; a
        multi-stone suicide returns 0 and gives the stones to the opponent).

        Raises :class:`OffBoardError`, :class:`OccupiedError`, :class:`KoError` or
        :class:`SuicideError` (all :class:`IllegalMoveError`, a ``ValueError``)."""
        cdef int code, n
        if loc == C_PASS_LOC:
            if color != C_BLACK and color != C_WHITE:
                self._raise_illegal(ILLEGAL_COLOR, loc, color)
            self.b.ko_loc = C_NULL_LOC
            self.b.ko_color = C_EMPTY
            return 0
        code = bd_legality(&self.b, loc, color, allow_suicide)
        if code != LEGAL:
            self._raise_illegal(code, loc, color)
        n = bd_play(&self.b, loc, color, NULL)
        return n if n > 0 else 0

    cpdef int play_fast(self, int loc, int color):
        """Play without any check (the move MUST be legal; a pass is fine). Returns the
        number captured, or minus the stones lost to a multi-stone suicide."""
        if loc == C_PASS_LOC:
            self.b.ko_loc = C_NULL_LOC
            self.b.ko_color = C_EMPTY
            return 0
        return bd_play(&self.b, loc, color, NULL)

    cpdef int64_t play_undoable(self, int loc, int color, bint allow_suicide=False) except -1:
        """Play a checked move (or pass) and return a record for :meth:`undo`.

        Records must be undone in reverse order on this same board."""
        cdef int code, n, dirs = 0
        cdef int ko_loc = self.b.ko_loc
        cdef int ko_color = self.b.ko_color
        if loc == C_PASS_LOC:
            if color != C_BLACK and color != C_WHITE:
                self._raise_illegal(ILLEGAL_COLOR, loc, color)
            self.b.ko_loc = C_NULL_LOC
            self.b.ko_color = C_EMPTY
            return pack_record(loc, color, ko_loc, ko_color, 0, False)
        code = bd_legality(&self.b, loc, color, allow_suicide)
        if code != LEGAL:
            self._raise_illegal(code, loc, color)
        n = bd_play(&self.b, loc, color, &dirs)
        return pack_record(loc, color, ko_loc, ko_color, dirs, n < 0)

    cpdef void undo(self, int64_t record):
        """Take back the move that returned ``record`` (it must be the last one played)."""
        bd_undo(&self.b, record)

    cpdef uint64_t hash_after(self, int loc, int color):
        """The :attr:`hash` the board would have after a legal move, without playing it."""
        if loc == C_PASS_LOC:
            return self.b.hash
        return bd_hash_after(&self.b, loc, color)

    def place_stones(self, locs, int color):
        """Put stones of ``color`` on empty points (handicap stones, setting up a position).
        Raises (leaving the board unchanged) if a point is off the board or occupied, or if
        a stone would capture or have no liberties."""
        cdef int loc
        cdef BoardData tmp = self.b
        if color != C_BLACK and color != C_WHITE:
            self._raise_illegal(ILLEGAL_COLOR, C_NULL_LOC, color)
        for loc in locs:
            if not bd_on_board(&tmp, loc):
                self._raise_illegal(ILLEGAL_OFF_BOARD, loc, color)
            if tmp.colors[loc] != C_EMPTY:
                self._raise_illegal(ILLEGAL_OCCUPIED, loc, color)
            if bd_play(&tmp, loc, color, NULL) != 0:
                raise ValueError(
                    f"a stone at {_vertex(tmp.width, tmp.height, loc)} would capture or be "
                    "captured; set-up stones must all have liberties"
                )
        tmp.ko_loc = C_NULL_LOC
        tmp.ko_color = C_EMPTY
        self.b = tmp

    def clear_ko(self):
        self.b.ko_loc = C_NULL_LOC
        self.b.ko_color = C_EMPTY

    # -- copying, comparing, checking ----------------------------------------------------

    cpdef Board copy(self):
        """An independent copy (one struct copy, about 6 KB)."""
        cdef Board other = Board.__new__(Board)
        other.b = self.b
        return other

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_board_from_state, (self.b.width, self.b.height, self.to_bytes(),
                                    self.b.ko_loc, self.b.ko_color,
                                    self.b.captures[1], self.b.captures[2]))

    def to_bytes(self):
        """Colours of every point, row-major from the top-left, one byte each."""
        cdef int x, y
        cdef bytearray out = bytearray(self.b.width * self.b.height)
        for y in range(self.b.height):
            for x in range(self.b.width):
                out[y * self.b.width + x] = self.b.colors[(x + 1) + (y + 1) * self.b.stride]
        return bytes(out)

    def same_position(self, Board other):
        """True if both boards have the same size and stones (ignores ko and captures)."""
        return (self.b.width == other.b.width and self.b.height == other.b.height
                and self.to_bytes() == other.to_bytes())

    def __eq__(self, other):
        if not isinstance(other, Board):
            return NotImplemented
        cdef Board o = other
        return (self.same_position(o) and self.b.hash == o.b.hash
                and self.b.ko_loc == o.b.ko_loc and self.b.ko_color == o.b.ko_color
                and self.b.captures[1] == o.b.captures[1]
                and self.b.captures[2] == o.b.captures[2])

    __hash__ = None

    def check_consistency(self):
        """Recompute everything from scratch (flood fills) and raise AssertionError on any
        mismatch with the incremental state: chains, liberties, hash, ko point."""
        cdef BoardData* b = &self.b
        cdef int x, y, loc, i, a, cur, h, n, c
        cdef uint64_t hh = ZOBRIST_SIZE[b.width][b.height]
        cdef int d = next_done()
        for loc in range(MAX_ARR):
            c = b.colors[loc]
            x = loc % b.stride - 1
            y = loc // b.stride - 1
            on = loc < b.arr_size and 0 <= x < b.width and 0 <= y < b.height
            if not on:
                if c != C_WALL:
                    raise AssertionError(f"off-board loc {loc} has colour {c}")
                continue
            if c not in (C_EMPTY, C_BLACK, C_WHITE):
                raise AssertionError(f"loc {loc} has bad colour {c}")
            hh ^= ZOBRIST_STONE[c][loc]
        if hh != b.hash:
            raise AssertionError(f"hash mismatch: {b.hash:#x} != recomputed {hh:#x}")
        cdef BoardData ref = b[0]
        for loc in range(b.arr_size):
            c = b.colors[loc]
            if c != C_BLACK and c != C_WHITE or DONE[loc] == d:
                continue
            bd_rebuild_chain(&ref, loc, d)
            h = b.head[loc]
            if b.colors[h] != c:
                raise AssertionError(f"chain head {h} of {loc} has the wrong colour")
            # every stone of the real component must point to the same head
            cur = loc
            n = 0
            while True:
                if ref.head[cur] != loc:
                    raise AssertionError("broken chain list")
                if b.head[cur] != h:
                    raise AssertionError(
                        f"stone {_vertex(b.width, b.height, cur)} has head {b.head[cur]}, "
                        f"expected {h}"
                    )
                n += 1
                cur = ref.nxt[cur]
                if cur == loc:
                    break
            # the stored circular list must cover exactly the component
            cur = h
            i = 0
            while True:
                if b.colors[cur] != c or b.head[cur] != h:
                    raise AssertionError(f"next-in-chain list of {h} leaves the chain")
                i += 1
                if i > n:
                    raise AssertionError(f"next-in-chain list of {h} is too long")
                cur = b.nxt[cur]
                if cur == h:
                    break
            if i != n:
                raise AssertionError(f"chain {h}: list has {i} stones, component has {n}")
            if b.nstones[h] != n:
                raise AssertionError(f"chain {h}: stone count {b.nstones[h]} != {n}")
            if b.nlibs[h] != ref.nlibs[loc]:
                raise AssertionError(
                    f"chain at {_vertex(b.width, b.height, h)}: liberties {b.nlibs[h]} "
                    f"!= recomputed {ref.nlibs[loc]}"
                )
            if n > 0 and ref.nlibs[loc] == 0:
                raise AssertionError(f"chain at {_vertex(b.width, b.height, h)} has no liberties")
        if b.ko_loc != C_NULL_LOC:
            if not bd_on_board(b, b.ko_loc) or b.colors[b.ko_loc] != C_EMPTY:
                raise AssertionError(f"ko point {b.ko_loc} is not an empty point")
            if b.ko_color != C_BLACK and b.ko_color != C_WHITE:
                raise AssertionError("ko point without a banned colour")
        for i in range(1, 3):
            if b.captures[i] < 0:
                raise AssertionError("negative capture count")

    # -- scoring -------------------------------------------------------------------------

    def score_regions(self, dead_locs=(), int tax=0):
        """Count a finished position. ``dead_locs``: stones marked dead (a whole chain is
        dead if any of its stones is listed). ``tax``: 0 NONE, 1 SEKI, 2 ALL.

        Returns a dict with ``ownership`` (bytes, row-major from the top-left: 0 neutral,
        1 Black, 2 White), living ``stones_b/_w``, ``territory_b/_w`` (empty and dead-stone
        points of regions counted for that colour), ``dead_b/_w`` (stones of that colour
        marked dead), ``dame``, ``seki`` (points not counted because of seki) and
        ``tax_b/_w`` (points deducted under TaxRule.ALL).

        Definitions (dead stones are taken off first):

        * A *region* is a connected set of empty points. It is an *own region* of a colour
          when every living stone bordering it has that colour; a region bordered by both
          colours (or none) is *neutral* (dame, or the shared liberties of a seki).
        * A *group* is a set of living chains of one colour joined through their own
          regions. A group is *independently alive* if it borders two or more own regions,
          or one own region of at least 4 points.
        * Under tax SEKI or ALL, a group that borders a neutral region and is not
          independently alive can only be living by seki: its own regions (its eyes) are
          not territory and count as ``seki`` points.
        * Under tax ALL, every other group with territory gives up 2 points of it (or
          all of it if it has fewer).
        """
        cdef BoardData* b = &self.b
        cdef signed char eff[MAX_ARR]
        cdef int16_t label[MAX_ARR]
        cdef int16_t stack[MAX_ARR]
        cdef signed char rborder[MAX_ARR]
        cdef int16_t rsize[MAX_ARR]
        cdef int16_t rep[MAX_ARR]
        cdef int16_t uf[MAX_ARR]
        cdef int16_t cnt[MAX_ARR]
        cdef int16_t maxsz[MAX_ARR]
        cdef int16_t terr[MAX_ARR]
        cdef signed char tn[MAX_ARR]
        cdef signed char seki_cluster[MAX_ARR]
        cdef int x, y, loc, i, a, c, r, nreg = 0, sp, cur, owner, h, ra, rb
        cdef int stones_b = 0, stones_w = 0, terr_b = 0, terr_w = 0, dead_b = 0, dead_w = 0
        cdef int dame = 0, seki = 0, tax_b = 0, tax_w = 0, t
        cdef int d = next_done()
        for loc in range(MAX_ARR):
            eff[loc] = b.colors[loc]
            label[loc] = -1
            uf[loc] = loc
            cnt[loc] = 0
            maxsz[loc] = 0
            terr[loc] = 0
            tn[loc] = 0
            seki_cluster[loc] = 0
        for dl in dead_locs:
            loc = dl
            if not bd_on_board(b, loc) or b.colors[loc] == C_EMPTY:
                raise ValueError(
                    f"{_vertex(b.width, b.height, loc)} has no stone and cannot be marked dead"
                )
            h = b.head[loc]
            cur = h
            while True:
                DONE[cur] = d
                cur = b.nxt[cur]
                if cur == h:
                    break
        for loc in range(b.arr_size):
            if eff[loc] != C_WALL and eff[loc] != C_EMPTY and DONE[loc] == d:
                if eff[loc] == C_BLACK:
                    dead_b += 1
                else:
                    dead_w += 1
                eff[loc] = C_EMPTY
        # label regions of effectively-empty points
        for loc in range(b.arr_size):
            if eff[loc] != C_EMPTY or label[loc] >= 0:
                continue
            r = nreg
            nreg += 1
            rborder[r] = 0
            rsize[r] = 0
            rep[r] = loc
            stack[0] = loc
            sp = 1
            label[loc] = r
            while sp > 0:
                sp -= 1
                cur = stack[sp]
                rsize[r] += 1
                for i in range(4):
                    a = cur + b.adj[i]
                    c = eff[a]
                    if c == C_EMPTY:
                        if label[a] < 0:
                            label[a] = r
                            stack[sp] = a
                            sp += 1
                    elif c != C_WALL:
                        rborder[r] |= c
        if tax >= 1:
            # groups: union chains (by head) with their own regions (by representative)
            for loc in range(b.arr_size):
                if eff[loc] != C_EMPTY:
                    continue
                r = label[loc]
                if rborder[r] != 1 and rborder[r] != 2:
                    continue
                for i in range(4):
                    a = loc + b.adj[i]
                    if eff[a] == rborder[r]:
                        ra = uf_find(uf, rep[r])
                        rb = uf_find(uf, b.head[a])
                        if ra != rb:
                            uf[ra] = rb
            for r in range(nreg):
                if rborder[r] == 1 or rborder[r] == 2:
                    ra = uf_find(uf, rep[r])
                    cnt[ra] += 1
                    if rsize[r] > maxsz[ra]:
                        maxsz[ra] = rsize[r]
                    terr[ra] += rsize[r]
            for loc in range(b.arr_size):
                if eff[loc] == C_EMPTY and rborder[label[loc]] == 3:
                    for i in range(4):
                        a = loc + b.adj[i]
                        if eff[a] == C_BLACK or eff[a] == C_WHITE:
                            tn[uf_find(uf, b.head[a])] = 1
            for loc in range(b.arr_size):
                if uf[loc] == loc and tn[loc] and cnt[loc] < 2 and maxsz[loc] < 4:
                    seki_cluster[loc] = 1
        if tax >= 2:
            for loc in range(b.arr_size):
                if uf[loc] == loc and terr[loc] > 0 and not seki_cluster[loc]:
                    c = eff[loc] if eff[loc] != C_EMPTY else rborder[label[loc]]
                    t = 2 if terr[loc] >= 2 else terr[loc]
                    if c == C_BLACK:
                        tax_b += t
                    elif c == C_WHITE:
                        tax_w += t
        own = bytearray(b.width * b.height)
        for y in range(b.height):
            for x in range(b.width):
                loc = (x + 1) + (y + 1) * b.stride
                c = eff[loc]
                owner = 0
                if c == C_BLACK:
                    stones_b += 1
                    owner = 1
                elif c == C_WHITE:
                    stones_w += 1
                    owner = 2
                else:
                    r = label[loc]
                    if rborder[r] == 1 or rborder[r] == 2:
                        if tax >= 1 and seki_cluster[uf_find(uf, rep[r])]:
                            seki += 1
                        else:
                            owner = rborder[r]
                            if owner == 1:
                                terr_b += 1
                            else:
                                terr_w += 1
                    else:
                        dame += 1
                own[y * b.width + x] = owner
        return {
            "ownership": bytes(own),
            "stones_b": stones_b, "stones_w": stones_w,
            "territory_b": terr_b, "territory_w": terr_w,
            "dead_b": dead_b, "dead_w": dead_w,
            "dame": dame, "seki": seki,
            "tax_b": tax_b, "tax_w": tax_w,
        }

    # -- display -------------------------------------------------------------------------

    def __str__(self):
        cdef int x, y
        cols = GTP_COLUMNS[: self.b.width]
        lines = ["   " + " ".join(cols)]
        for y in range(self.b.height):
            row = []
            for x in range(self.b.width):
                c = self.b.colors[(x + 1) + (y + 1) * self.b.stride]
                row.append(".XO#"[c])
            lines.append(f"{self.b.height - y:2d} " + " ".join(row))
        return "\n".join(lines)

    def __repr__(self):
        return (f"<Board {self.b.width}x{self.b.height} black={self.num_stones(C_BLACK)} "
                f"white={self.num_stones(C_WHITE)} hash={self.b.hash:#018x}>")


def _board_from_state(int width, int height, bytes stones, int ko_loc, int ko_color,
                      int cap_b, int cap_w):
    cdef Board b = Board(width, height)
    cdef int x, y
    blacks = []
    whites = []
    for y in range(height):
        for x in range(width):
            c = stones[y * width + x]
            if c == C_BLACK:
                blacks.append(b.loc(x, y))
            elif c == C_WHITE:
                whites.append(b.loc(x, y))
    for loc in blacks:
        bd_play(&b.b, loc, C_BLACK, NULL)
    for loc in whites:
        bd_play(&b.b, loc, C_WHITE, NULL)
    b.b.ko_loc = ko_loc
    b.b.ko_color = ko_color
    b.b.captures[1] = cap_b
    b.b.captures[2] = cap_w
    return b


# ---------------------------------------------------------------------------------------
# Random playouts (the speed benchmark workload, fixed exactly so numbers compare).

cdef int playout(int size, uint64_t seed, int16_t* record, int max_moves) noexcept nogil:
    """One random game on a size x size board. Returns the number of turns (moves and
    passes). If ``record`` is not NULL it receives every turn's loc (PASS_LOC for a pass)."""
    cdef BoardData b
    cdef int16_t empties[MAX_ARR]
    cdef int m, cand, i, p, chosen, t
    cdef int pla = C_BLACK
    cdef int passes = 0
    cdef int turns = 0
    cdef uint64_t rng = seed
    bd_init(&b, size, size)
    m = bd_collect_empty(&b, empties)
    while turns < max_moves:
        cand = m
        chosen = -1
        while cand > 0:
            i = <int>(splitmix64(&rng) % <uint64_t>cand)
            p = empties[i]
            if bd_legality(&b, p, pla, False) == LEGAL and not bd_is_simple_eye(&b, p, pla):
                chosen = p
                empties[i] = empties[m - 1]
                m -= 1
                break
            cand -= 1
            t = empties[i]
            empties[i] = empties[cand]
            empties[cand] = t
        if record != NULL:
            record[turns] = chosen if chosen >= 0 else C_PASS_LOC
        turns += 1
        if chosen < 0:
            b.ko_loc = C_NULL_LOC
            b.ko_color = C_EMPTY
            passes += 1
            if passes >= 2:
                break
        else:
            passes = 0
            if bd_play(&b, chosen, pla, NULL) != 0:
                m = bd_collect_empty(&b, empties)
        pla = 3 - pla
    return turns


cdef enum:
    C_PLAYOUT_MAX_MOVES = 1000

PLAYOUT_SEED_BASE = 12345
PLAYOUT_MAX_MOVES = C_PLAYOUT_MAX_MOVES


def random_playout_game(int size=19, uint64_t seed=12345):
    """Play one random game (the benchmark workload) and return its number of turns.

    Workload: splitmix64 seeded with ``seed``; the empty points are kept in a list
    (row-major, rescanned after each capture); a candidate is drawn with ``rng() % count``
    and swapped out of the candidates, until one is legal (suicide illegal, simple ko) and
    does not fill a simple own eye; pass if none is left. Ends at two consecutive passes or
    1000 turns."""
    if not (2 <= size <= MAX_SIZE):
        raise ValueError(f"board size must be between 2 and {MAX_SIZE}")
    return playout(size, seed, NULL, C_PLAYOUT_MAX_MOVES)


def random_playouts(int games, int size=19, uint64_t seed_base=12345):
    """Play ``games`` random games (seeds ``seed_base + g``); return the total turns."""
    cdef int g
    cdef int64_t total = 0
    if not (2 <= size <= MAX_SIZE):
        raise ValueError(f"board size must be between 2 and {MAX_SIZE}")
    with nogil:
        for g in range(games):
            total += playout(size, seed_base + <uint64_t>g, NULL, C_PLAYOUT_MAX_MOVES)
    return total


def record_playout_games(int games, int size=19, uint64_t seed_base=12345):
    """The same games as :func:`random_playouts`, returned as lists of locs (PASS_LOC for
    a pass), Black first. Used to benchmark replay through the Python API."""
    cdef int16_t rec[1000]
    cdef int g, n, i
    out = []
    if not (2 <= size <= MAX_SIZE):
        raise ValueError(f"board size must be between 2 and {MAX_SIZE}")
    for g in range(games):
        n = playout(size, seed_base + <uint64_t>g, rec, C_PLAYOUT_MAX_MOVES)
        out.append([rec[i] for i in range(n)])
    return out


def splitmix64_sequence(uint64_t seed, int n):
    """The first ``n`` outputs of splitmix64 seeded with ``seed`` (for tests)."""
    cdef uint64_t st = seed
    return [splitmix64(&st) for _ in range(n)]


# -- WebSocket gateway hot paths -------------------------------------------------------------
#
# The fan-out builds each event's frame once and writes the same bytes to every subscriber
# (goapp/bus/subscriptions.py), so the frame header is built here, not by aiohttp's writer. Server
# frames are never masked (RFC 6455, 5.1) and never compressed (the shared frame requires
# compress=False on the WebSocketResponse).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy


cdef bytes _ws_frame(int opcode, bytes payload):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
    cdef Py_ssize_t hdr
    cdef int i
    cdef unsigned long long ln = <unsigned long long>n
    if n < 126:
        hdr = 2
    elif n < 65536:
        hdr = 4
    else:
        hdr = 10
    cdef bytes out = PyBytes_FromStringAndSize(NULL, hdr + n)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    p[0] = <unsigned char>(0x80 | opcode)  # FIN + opcode, RSV bits clear
    if hdr == 2:
        p[1] = <unsigned char>n  # MASK bit clear
    elif hdr == 4:
        p[1] = 126
        p[2] = <unsigned char>((ln >> 8) & 0xFF)
        p[3] = <unsigned char>(ln & 0xFF)
    else:
        p[1] = 127
        for i in range(8):
            p[2 + i] = <unsigned char>((ln >> (8 * (7 - i))) & 0xFF)
    if n:
        memcpy(p + hdr, PyBytes_AS_STRING(payload), n)
    return out


def encode_ws_text_frame(bytes payload not None):
    """One unmasked, uncompressed, final WebSocket text frame (opcode 0x1) carrying
    ``payload`` (UTF-8 JSON), with a 7-, 16- or 64-bit length as RFC 6455 requires."""
    return _ws_frame(0x1, payload)


def encode_ws_frame(int opcode, payload not None):
    """A final, unmasked frame of any opcode; ``payload`` is any bytes-like object (aiohttp
    hands a ping's payload over as a bytearray). Control frames (close, ping, pong: opcode
    0x8 and above) must carry at most 125 bytes: ``ValueError`` otherwise."""
    if type(payload) is not bytes:
        payload = bytes(payload)
    if opcode < 0 or opcode > 0xF:
        raise ValueError(f"bad WebSocket opcode {opcode}")
    if opcode >= 0x8 and PyBytes_GET_SIZE(payload) > 125:
        raise ValueError("a control frame carries at most 125 bytes")
    return _ws_frame(opcode, payload)
