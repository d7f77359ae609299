/*
 * fixoms native order book.  See book.h for the contract and
 * docs/native-book.md for the exact semantics.
 *
 * Layout: one flat array of levels per side indexed by (price - min_price),
 * each level an intrusive doubly linked FIFO over a preallocated pool of
 * 64-byte order slots; a two-level bitmap per side finds the next non-empty
 * level in a few word scans when the best level empties; an open-addressing
 * (linear probing, backward-shift delete) id -> slot table sized to at least
 * twice max_orders.  Slot index 0 is the null link so that calloc'ed memory
 * is already a valid empty book and creation touches no pages.
 */
#include "book.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL 0u
#define MAX_LEVELS 0x7fffffffLL
#define MAX_ORDERS 0x7ffffffeu

typedef struct order {
    uint64_t id;
    uint64_t owner;
    int64_t leaves;
    int64_t visible;
    int64_t display;
    uint64_t seq; /* time priority stamp, checked by fx_check */
    uint32_t prev;
    uint32_t next; /* also the free-list link */
    uint32_t level;
    uint8_t side;
    uint8_t stp;
    uint8_t live;
    uint8_t iceberg;
} order_t;

_Static_assert(sizeof(order_t) == 64, "an order slot should be one cache line");

typedef struct level {
    uint32_t head;
    uint32_t tail;
    uint32_t count;
    uint32_t pad_;
    int64_t visible;
    int64_t total;
} level_t;

typedef struct hslot {
    uint64_t id;
    uint32_t slot; /* 0 = empty */
    uint32_t dist; /* probe distance from the id's home bucket */
} hslot_t;

struct fx_book {
    int64_t min_price;
    int64_t max_price;
    int64_t n_levels;
    int64_t max_qty;
    uint32_t max_orders;
    uint32_t count;
    uint32_t hwm;
    uint32_t free_head;
    uint32_t side_count[2];
    uint32_t n_ice[2];
    /* Level index of the best level; -1 (bids) or n_levels (asks) when empty,
       so "does a taker cross" is a single comparison. */
    int64_t best[2];
    level_t *levels[2];
    uint64_t *bits[2]; /* one bit per level */
    uint64_t *sum[2];  /* one bit per non-zero word of bits */
    size_t n_words;
    size_t n_sum;
    order_t *orders; /* max_orders + 1 slots, slot 0 unused */
    hslot_t *hash;
    uint64_t hmask;
    unsigned hshift1;
    unsigned hshift2;
    uint64_t seq;
    fx_event *att_ev; /* buffer of the *1 calls */
    size_t att_cap;
};

/* ------------------------------------------------------------------ */
/* bitmaps                                                             */

static inline void bm_set(fx_book *b, int s, int64_t i)
{
    size_t w = (size_t)i >> 6;
    b->bits[s][w] |= 1ULL << (i & 63);
    b->sum[s][w >> 6] |= 1ULL << (w & 63);
}

static inline void bm_clear(fx_book *b, int s, int64_t i)
{
    size_t w = (size_t)i >> 6;
    b->bits[s][w] &= ~(1ULL << (i & 63));
    if (b->bits[s][w] == 0)
        b->sum[s][w >> 6] &= ~(1ULL << (w & 63));
}

/* Smallest non-empty level index >= i, or n_levels. */
static int64_t bm_next(const fx_book *b, int s, int64_t i)
{
    if (i >= b->n_levels)
        return b->n_levels;
    const uint64_t *bits = b->bits[s];
    size_t w = (size_t)i >> 6;
    uint64_t m = bits[w] & (~0ULL << (i & 63));
    if (m)
        return (int64_t)((w << 6) + (size_t)__builtin_ctzll(m));
    size_t sw = w + 1;
    if (sw >= b->n_words)
        return b->n_levels;
    size_t si = sw >> 6;
    uint64_t sm = b->sum[s][si] & (~0ULL << (sw & 63));
    while (!sm) {
        if (++si >= b->n_sum)
            return b->n_levels;
        sm = b->sum[s][si];
    }
    w = (si << 6) + (size_t)__builtin_ctzll(sm);
    return (int64_t)((w << 6) + (size_t)__builtin_ctzll(bits[w]));
}

/* Largest non-empty level index <= i, or -1. */
static int64_t bm_prev(const fx_book *b, int s, int64_t i)
{
    if (i < 0)
        return -1;
    const uint64_t *bits = b->bits[s];
    size_t w = (size_t)i >> 6;
    uint64_t m = bits[w] & (~0ULL >> (63 - (i & 63)));
    if (m)
        return (int64_t)((w << 6) + 63 - (size_t)__builtin_clzll(m));
    if (w == 0)
        return -1;
    size_t sw = w - 1;
    size_t si = sw >> 6;
    uint64_t sm = b->sum[s][si] & (~0ULL >> (63 - (sw & 63)));
    while (!sm) {
        if (si == 0)
            return -1;
        sm = b->sum[s][--si];
    }
    w = (si << 6) + 63 - (size_t)__builtin_clzll(sm);
    return (int64_t)((w << 6) + 63 - (size_t)__builtin_clzll(bits[w]));
}

/* ------------------------------------------------------------------ */
/* id -> slot table                                                    */

/* Folding the high bits into the low ones keeps sequential ids (the common
   case for an OMS) in sequential buckets, which is far kinder to the cache
   than a multiplicative scramble, while strided or tagged ids still spread.
   Sequential ids form long runs of occupied buckets, which plain linear
   probing handles badly (a miss or a backward-shift delete walks to the end
   of the run); Robin Hood ordering lets both stop at the first bucket whose
   entry sits closer to its home than the probe does. */
static inline uint64_t h_home(const fx_book *b, uint64_t id)
{
    return (id ^ (id >> b->hshift1) ^ (id >> b->hshift2)) & b->hmask;
}

#define H_NONE UINT64_MAX

static inline uint64_t h_find(const fx_book *b, uint64_t id)
{
    const hslot_t *t = b->hash;
    uint64_t i = h_home(b, id);
    for (uint32_t d = 0;; d++) {
        if (!t[i].slot || t[i].dist < d)
            return H_NONE;
        if (t[i].id == id)
            return i;
        i = (i + 1) & b->hmask;
    }
}

static inline void h_insert(fx_book *b, uint64_t id, uint32_t slot)
{
    hslot_t *t = b->hash;
    hslot_t cur = {id, slot, 0};
    uint64_t i = h_home(b, id);
    for (;;) {
        if (!t[i].slot) {
            t[i] = cur;
            return;
        }
        if (t[i].dist < cur.dist) {
            hslot_t tmp = t[i];
            t[i] = cur;
            cur = tmp;
        }
        i = (i + 1) & b->hmask;
        cur.dist++;
    }
}

static inline void h_erase_at(fx_book *b, uint64_t i)
{
    hslot_t *t = b->hash;
    for (;;) {
        const uint64_t j = (i + 1) & b->hmask;
        if (!t[j].slot || t[j].dist == 0)
            break;
        t[i] = t[j];
        t[i].dist--;
        i = j;
    }
    t[i].slot = 0;
    t[i].dist = 0;
}

/* ------------------------------------------------------------------ */
/* levels and the pool                                                 */

static inline void emit(fx_event *e, uint32_t kind, uint32_t opi, uint64_t id, uint64_t maker,
                        int64_t price, int64_t qty, int64_t leaves, int64_t maker_leaves,
                        uint32_t reason)
{
    e->kind = kind;
    e->op_index = opi;
    e->order_id = id;
    e->maker_id = maker;
    e->price = price;
    e->qty = qty;
    e->leaves = leaves;
    e->maker_leaves = maker_leaves;
    e->reason = reason;
    e->reserved = 0;
}

static inline void link_back(fx_book *b, uint32_t s, int side, int64_t li)
{
    order_t *pool = b->orders;
    order_t *o = &pool[s];
    level_t *L = &b->levels[side][li];
    o->level = (uint32_t)li;
    o->prev = L->tail;
    o->next = NIL;
    if (L->tail) {
        pool[L->tail].next = s;
    } else {
        L->head = s;
        bm_set(b, side, li);
        if (side == FX_BUY ? li > b->best[FX_BUY] : li < b->best[FX_SELL])
            b->best[side] = li;
    }
    L->tail = s;
    L->count++;
    L->visible += o->visible;
    L->total += o->leaves;
    o->seq = ++b->seq;
}

static inline void unlink_level(fx_book *b, uint32_t s)
{
    order_t *pool = b->orders;
    order_t *o = &pool[s];
    const int side = o->side;
    const int64_t li = o->level;
    level_t *L = &b->levels[side][li];
    if (o->prev)
        pool[o->prev].next = o->next;
    else
        L->head = o->next;
    if (o->next)
        pool[o->next].prev = o->prev;
    else
        L->tail = o->prev;
    L->count--;
    L->visible -= o->visible;
    L->total -= o->leaves;
    if (L->count == 0) {
        bm_clear(b, side, li);
        if (b->best[side] == li)
            b->best[side] = side == FX_BUY ? bm_prev(b, FX_BUY, li - 1)
                                           : bm_next(b, FX_SELL, li + 1);
    }
}

static inline uint32_t alloc_slot(fx_book *b)
{
    uint32_t s = b->free_head;
    if (s) {
        b->free_head = b->orders[s].next;
        return s;
    }
    return ++b->hwm;
}

/* Forget an order that is no longer linked into a level. */
static inline void release(fx_book *b, uint32_t s, uint64_t hpos)
{
    order_t *o = &b->orders[s];
    h_erase_at(b, hpos);
    o->live = 0;
    b->count--;
    b->side_count[o->side]--;
    if (o->iceberg)
        b->n_ice[o->side]--;
    o->next = b->free_head;
    b->free_head = s;
}

static inline void remove_order(fx_book *b, uint32_t s, uint64_t hpos)
{
    unlink_level(b, s);
    release(b, s, hpos);
}

/* An iceberg whose visible slice is used up shows a new slice and goes to
   the back of its level. */
static inline void replenish(fx_book *b, level_t *L, uint32_t s)
{
    order_t *pool = b->orders;
    order_t *o = &pool[s];
    int64_t v = o->display < o->leaves ? o->display : o->leaves;
    o->visible = v;
    L->visible += v;
    o->seq = ++b->seq;
    if (L->tail == s)
        return;
    if (o->prev)
        pool[o->prev].next = o->next;
    else
        L->head = o->next;
    pool[o->next].prev = o->prev;
    o->prev = L->tail;
    o->next = NIL;
    pool[L->tail].next = s;
    L->tail = s;
}

static inline int crosses(const fx_book *b, int side, int64_t li)
{
    return side == FX_BUY ? b->best[FX_SELL] <= li : b->best[FX_BUY] >= li;
}

/* ------------------------------------------------------------------ */
/* matching                                                            */

/* Walks the opposite side from its best level while the taker crosses.
   Returns the number of events written; *prem is the taker's remaining
   quantity, zeroed (with *stopped set) when self-match prevention cancels
   the taker. */
static size_t match(fx_book *b, int side, int64_t limit, uint64_t tid, int64_t tprice,
                    int64_t *prem, uint64_t owner, int stp, fx_event *ev, uint32_t opi,
                    int *stopped)
{
    const int opp = side ^ 1;
    level_t *const lv = b->levels[opp];
    order_t *const pool = b->orders;
    const int stp_on = owner != 0 && stp != FX_STP_NONE;
    int64_t rem = *prem;
    size_t n = 0;
    while (crosses(b, side, limit)) {
        const int64_t li = b->best[opp];
        level_t *L = &lv[li];
        const int64_t px = b->min_price + li;
        while (L->head) {
            const uint32_t s = L->head;
            order_t *m = &pool[s];
            if (stp_on && m->owner == owner) {
                if (stp != FX_STP_CANCEL_TAKER) {
                    emit(&ev[n++], FX_EV_CANCELED, opi, m->id, 0, px, m->leaves, 0, 0,
                         FX_R_SELF_MATCH);
                    remove_order(b, s, h_find(b, m->id));
                }
                if (stp != FX_STP_CANCEL_MAKER) {
                    emit(&ev[n++], FX_EV_CANCELED, opi, tid, 0, tprice, rem, 0, 0,
                         FX_R_SELF_MATCH);
                    *prem = 0;
                    *stopped = 1;
                    return n;
                }
                continue;
            }
            const int64_t t = rem < m->visible ? rem : m->visible;
            rem -= t;
            m->visible -= t;
            m->leaves -= t;
            L->visible -= t;
            L->total -= t;
            emit(&ev[n++], FX_EV_FILL, opi, tid, m->id, px, t, rem, m->leaves, FX_R_NONE);
            if (m->leaves == 0)
                remove_order(b, s, h_find(b, m->id));
            else if (m->visible == 0)
                replenish(b, L, s);
            if (rem == 0) {
                *prem = 0;
                return n;
            }
        }
    }
    *prem = rem;
    return n;
}

/* Side-effect free replay of match(): how much the taker would trade, how
   many events matching would emit (counting stops once past cap) and whether
   self-match prevention would cancel the taker.  Used to decide FOK before
   any fill and to refuse an operation whose events would not fit.  With
   count_events == 0 only *traded is exact. */
static void dry_run(const fx_book *b, int side, int64_t limit, int64_t qty, uint64_t owner,
                    int stp, int count_events, uint64_t cap, int64_t *traded,
                    uint64_t *events, int *stopped)
{
    const int opp = side ^ 1;
    const order_t *pool = b->orders;
    const int stp_on = owner != 0 && stp != FX_STP_NONE;
    int64_t rem = qty;
    uint64_t ev = 0;
    *stopped = 0;
    int64_t li = b->best[opp];
    while (rem > 0 && (side == FX_BUY ? li <= limit : li >= limit)) {
        const level_t *L = &b->levels[opp][li];
        int more = 0; /* an iceberg survives round 0 with hidden quantity */
        /* Round 0: the queue in its current order. */
        for (uint32_t s = L->head; s && rem > 0; s = pool[s].next) {
            const order_t *m = &pool[s];
            if (stp_on && m->owner == owner) {
                if (stp == FX_STP_CANCEL_MAKER) {
                    ev++;
                    continue;
                }
                ev += stp == FX_STP_CANCEL_BOTH ? 2 : 1;
                *stopped = 1;
                goto done;
            }
            const int64_t t = rem < m->visible ? rem : m->visible;
            rem -= t;
            ev++;
            if (t == m->visible && m->leaves > m->visible)
                more = 1;
            if (count_events && ev > cap)
                goto done;
        }
        /* Later rounds: replenished icebergs come back in their original
           relative order, each round showing min(display, hidden left). */
        for (int64_t r = 1; more && rem > 0; r++) {
            int64_t hidden = 0;
            uint64_t slices = 0;
            for (uint32_t s = L->head; s; s = pool[s].next) {
                const order_t *m = &pool[s];
                if (stp_on && m->owner == owner)
                    continue; /* canceled in round 0 */
                const int64_t h0 = m->leaves - m->visible;
                const int64_t d = m->display;
                if (h0 <= 0 || r - 1 > (h0 - 1) / d)
                    continue;
                const int64_t h = h0 - (r - 1) * d;
                hidden += h;
                slices += (uint64_t)(h / d) + (h % d != 0);
            }
            if (rem >= hidden) {
                rem -= hidden;
                ev += slices;
                break;
            }
            if (!count_events) {
                rem = 0;
                break;
            }
            more = 0;
            for (uint32_t s = L->head; s; s = pool[s].next) {
                const order_t *m = &pool[s];
                if (stp_on && m->owner == owner)
                    continue;
                const int64_t h0 = m->leaves - m->visible;
                const int64_t d = m->display;
                if (h0 <= 0 || r - 1 > (h0 - 1) / d)
                    continue;
                const int64_t h = h0 - (r - 1) * d;
                const int64_t sl = d < h ? d : h;
                const int64_t t = rem < sl ? rem : sl;
                rem -= t;
                ev++;
                if (t == sl && h > sl)
                    more = 1;
                if (rem == 0 || ev > cap)
                    goto done;
            }
        }
        if (count_events && ev > cap)
            goto done;
        li = side == FX_BUY ? bm_next(b, FX_SELL, li + 1) : bm_prev(b, FX_BUY, li - 1);
    }
done:
    *traded = qty - rem;
    *events = ev;
}

/* Upper bound on the events matching can emit, cheap enough to test on
   every operation so the exact dry run is only needed near a full buffer. */
static inline uint64_t match_bound(const fx_book *b, int opp, int64_t qty, uint64_t owner,
                                   int stp)
{
    const uint64_t makers = b->side_count[opp];
    const uint64_t stp_cancels = (owner != 0 && stp != FX_STP_NONE) ? makers : 0;
    uint64_t bound = (uint64_t)qty + stp_cancels;
    /* Without icebergs every maker yields at most one event. */
    if (b->n_ice[opp] == 0 && makers < bound)
        bound = makers;
    return bound + 2;
}

/* ------------------------------------------------------------------ */
/* operations                                                          */

static inline int too_many_slices(int64_t qty, int64_t display)
{
    return display > 0 && (qty - 1) / display >= FX_MAX_ICEBERG_SLICES;
}

static int64_t do_add(fx_book *b, uint64_t id, int side, int64_t price, int64_t qty, int tif,
                      uint64_t owner, int64_t display, int stp, int market, fx_event *ev,
                      size_t cap, uint32_t opi)
{
    if (cap == 0)
        return FX_ERR_EVENT_BUFFER;
    uint32_t reason = FX_R_NONE;
    if ((unsigned)side > 1u || (unsigned)stp > 3u || (!market && (unsigned)tif > 3u))
        reason = FX_R_BAD_PARAM;
    else if (qty <= 0 || qty > b->max_qty || (!market && (display < 0 || too_many_slices(qty, display))))
        reason = FX_R_BAD_QTY;
    else if (!market && (price < b->min_price || price > b->max_price))
        reason = FX_R_PRICE_OUT_OF_BAND;
    else if (h_find(b, id) != H_NONE)
        reason = FX_R_DUPLICATE_ID;
    else if (!market && (tif == FX_GTC || tif == FX_DAY) && b->count >= b->max_orders)
        reason = FX_R_BOOK_FULL;
    if (reason != FX_R_NONE) {
        emit(ev, FX_EV_REJECTED, opi, id, 0, 0, 0, 0, 0, reason);
        return 1;
    }
    if (market)
        tif = FX_IOC;
    const int64_t limit = market ? (side == FX_BUY ? b->n_levels - 1 : 0) : price - b->min_price;
    const int64_t tprice = market ? 0 : price;
    const int rests = tif == FX_GTC || tif == FX_DAY;
    size_t n = 0;
    int64_t rem = qty;
    int stopped = 0;
    if (crosses(b, side, limit)) {
        int64_t traded;
        uint64_t nev;
        int st;
        if (tif == FX_FOK) {
            dry_run(b, side, limit, qty, owner, stp, 0, 0, &traded, &nev, &st);
            if (traded < qty) {
                emit(ev, FX_EV_CANCELED, opi, id, 0, tprice, qty, 0, 0, FX_R_FOK_UNFILLABLE);
                return 1;
            }
        }
        if ((uint64_t)cap < match_bound(b, side ^ 1, qty, owner, stp)) {
            /* A counting pass that stops early has already seen more events
               than fit, so an early stop can only mean "refuse". */
            dry_run(b, side, limit, qty, owner, stp, 1, cap, &traded, &nev, &st);
            if (nev + (!st && traded < qty) > (uint64_t)cap)
                return FX_ERR_EVENT_BUFFER;
        }
        n = match(b, side, limit, id, tprice, &rem, owner, stp, ev, opi, &stopped);
    } else if (tif == FX_FOK) {
        emit(ev, FX_EV_CANCELED, opi, id, 0, tprice, qty, 0, 0, FX_R_FOK_UNFILLABLE);
        return 1;
    }
    if (stopped || rem == 0)
        return (int64_t)n;
    if (!rests) {
        emit(&ev[n++], FX_EV_CANCELED, opi, id, 0, tprice, rem, 0, 0, FX_R_IOC_UNFILLED);
        return (int64_t)n;
    }
    const uint32_t s = alloc_slot(b);
    order_t *o = &b->orders[s];
    o->id = id;
    o->owner = owner;
    o->leaves = rem;
    o->display = display;
    o->visible = (display > 0 && display < rem) ? display : rem;
    o->side = (uint8_t)side;
    o->stp = (uint8_t)stp;
    o->live = 1;
    o->iceberg = display > 0;
    h_insert(b, id, s);
    link_back(b, s, side, price - b->min_price);
    b->count++;
    b->side_count[side]++;
    if (o->iceberg)
        b->n_ice[side]++;
    emit(&ev[n++], FX_EV_RESTED, opi, id, 0, price, rem, rem, 0, FX_R_NONE);
    return (int64_t)n;
}

static int64_t do_cancel(fx_book *b, uint64_t id, fx_event *ev, size_t cap, uint32_t opi)
{
    if (cap == 0)
        return FX_ERR_EVENT_BUFFER;
    const uint64_t hp = h_find(b, id);
    if (hp == H_NONE) {
        emit(ev, FX_EV_REJECTED, opi, id, 0, 0, 0, 0, 0, FX_R_UNKNOWN_ID);
        return 1;
    }
    const uint32_t s = (uint32_t)b->hash[hp].slot;
    const order_t *o = &b->orders[s];
    emit(ev, FX_EV_CANCELED, opi, id, 0, b->min_price + o->level, o->leaves, 0, 0, FX_R_USER);
    remove_order(b, s, hp);
    return 1;
}

static int64_t do_replace(fx_book *b, uint64_t id, int64_t price, int64_t qty, fx_event *ev,
                          size_t cap, uint32_t opi)
{
    if (cap == 0)
        return FX_ERR_EVENT_BUFFER;
    const uint64_t hp = h_find(b, id);
    uint32_t reason = FX_R_NONE;
    if (hp == H_NONE)
        reason = FX_R_UNKNOWN_ID;
    else if (qty <= 0 || qty > b->max_qty ||
             too_many_slices(qty, b->orders[b->hash[hp].slot].display))
        reason = FX_R_BAD_QTY;
    else if (price < b->min_price || price > b->max_price)
        reason = FX_R_PRICE_OUT_OF_BAND;
    if (reason != FX_R_NONE) {
        emit(ev, FX_EV_REJECTED, opi, id, 0, 0, 0, 0, 0, reason);
        return 1;
    }
    const uint32_t s = (uint32_t)b->hash[hp].slot;
    order_t *o = &b->orders[s];
    const int side = o->side;
    const int64_t li = price - b->min_price;
    if (li == (int64_t)o->level && qty <= o->leaves) {
        /* Shrinking in place keeps time priority; the hidden part goes first. */
        level_t *L = &b->levels[side][li];
        const int64_t nv = o->visible < qty ? o->visible : qty;
        L->total -= o->leaves - qty;
        L->visible -= o->visible - nv;
        o->leaves = qty;
        o->visible = nv;
        emit(ev, FX_EV_REPLACED, opi, id, 0, price, qty, qty, 0, FX_R_NONE);
        return 1;
    }
    const int cross = crosses(b, side, li);
    if (cross) {
        const uint64_t bound = match_bound(b, side ^ 1, qty, o->owner, o->stp) + 1;
        if ((uint64_t)cap < bound) {
            int64_t traded;
            uint64_t nev;
            int st;
            dry_run(b, side, li, qty, o->owner, o->stp, 1, cap, &traded, &nev, &st);
            if (1 + nev > (uint64_t)cap)
                return FX_ERR_EVENT_BUFFER;
        }
    }
    size_t n = 0;
    emit(&ev[n++], FX_EV_REPLACED, opi, id, 0, price, qty, qty, 0, FX_R_NONE);
    unlink_level(b, s);
    int64_t rem = qty;
    if (cross) {
        int stopped = 0;
        n += match(b, side, li, id, price, &rem, o->owner, o->stp, &ev[n], opi, &stopped);
        if (stopped || rem == 0) {
            release(b, s, h_find(b, id));
            return (int64_t)n;
        }
    }
    o->leaves = rem;
    o->visible = (o->display > 0 && o->display < rem) ? o->display : rem;
    link_back(b, s, side, li);
    return (int64_t)n;
}

/* ------------------------------------------------------------------ */
/* public API                                                          */

fx_book *fx_book_new(int64_t min_price, int64_t max_price, uint32_t max_orders)
{
    if (max_price < min_price || max_orders == 0 || max_orders > MAX_ORDERS)
        return NULL;
    const uint64_t span = (uint64_t)max_price - (uint64_t)min_price;
    if (span >= (uint64_t)MAX_LEVELS)
        return NULL;
    fx_book *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->min_price = min_price;
    b->max_price = max_price;
    b->n_levels = (int64_t)span + 1;
    b->max_orders = max_orders;
    b->max_qty = INT64_MAX / (int64_t)max_orders;
    b->best[FX_BUY] = -1;
    b->best[FX_SELL] = b->n_levels;
    b->n_words = ((size_t)b->n_levels + 63) / 64;
    b->n_sum = (b->n_words + 63) / 64;
    uint64_t hcap = 16;
    unsigned hbits = 4;
    while (hcap < 2 * (uint64_t)max_orders) {
        hcap <<= 1;
        hbits++;
    }
    b->hmask = hcap - 1;
    b->hshift1 = hbits;
    b->hshift2 = 2 * hbits < 64 ? 2 * hbits : 63;
    int ok = 1;
    for (int s = 0; s < 2; s++) {
        b->levels[s] = calloc((size_t)b->n_levels, sizeof(level_t));
        b->bits[s] = calloc(b->n_words, sizeof(uint64_t));
        b->sum[s] = calloc(b->n_sum, sizeof(uint64_t));
        ok = ok && b->levels[s] && b->bits[s] && b->sum[s];
    }
    b->orders = calloc((size_t)max_orders + 1, sizeof(order_t));
    b->hash = calloc((size_t)hcap, sizeof(hslot_t));
    if (!ok || !b->orders || !b->hash) {
        fx_book_free(b);
        return NULL;
    }
    return b;
}

void fx_book_free(fx_book *b)
{
    if (!b)
        return;
    for (int s = 0; s < 2; s++) {
        free(b->levels[s]);
        free(b->bits[s]);
        free(b->sum[s]);
    }
    free(b->orders);
    free(b->hash);
    free(b);
}

int64_t fx_max_qty(const fx_book *b)
{
    return b->max_qty;
}

static inline int64_t run_op(fx_book *b, const fx_op *op, fx_event *ev, size_t cap, uint32_t opi)
{
    switch (op->type) {
    case FX_OP_ADD:
        return do_add(b, op->order_id, op->side, op->price, op->qty, op->tif, op->owner,
                      op->display, op->stp, 0, ev, cap, opi);
    case FX_OP_CANCEL:
        return do_cancel(b, op->order_id, ev, cap, opi);
    case FX_OP_REPLACE:
        return do_replace(b, op->order_id, op->price, op->qty, ev, cap, opi);
    case FX_OP_MARKET:
        return do_add(b, op->order_id, op->side, 0, op->qty, FX_IOC, op->owner, 0, op->stp, 1,
                      ev, cap, opi);
    default:
        if (cap == 0)
            return FX_ERR_EVENT_BUFFER;
        emit(ev, FX_EV_REJECTED, opi, op->order_id, 0, 0, 0, 0, 0, FX_R_BAD_PARAM);
        return 1;
    }
}

/* A batch knows its future: touching the memory later operations will need
   hides most cache misses once the book outgrows the cache.  Three stages,
   because each address comes from the line fetched by the previous one:
   id bucket and price level, then the order slot (or the level's tail for
   an add), then the slot's queue neighbours.
   These are only hints; the state may change before the operation runs. */
#define PF_FAR 12
#define PF_MID 6
#define PF_NEAR 2
#ifndef PF_MIN_ORDERS
#define PF_MIN_ORDERS 16384u
#endif

static inline void prefetch_far(const fx_book *b, const fx_op *op)
{
    __builtin_prefetch(&b->hash[h_home(b, op->order_id)]);
    if (op->type == FX_OP_ADD && op->side <= 1 && op->price >= b->min_price &&
        op->price <= b->max_price)
        __builtin_prefetch(&b->levels[op->side][op->price - b->min_price]);
}

static inline const order_t *resting_hint(const fx_book *b, const fx_op *op)
{
    if (op->type != FX_OP_CANCEL && op->type != FX_OP_REPLACE)
        return NULL;
    const hslot_t *e = &b->hash[h_home(b, op->order_id)];
    return (e->slot && e->id == op->order_id) ? &b->orders[e->slot] : NULL;
}

static inline void prefetch_mid(const fx_book *b, const fx_op *op)
{
    const order_t *o = resting_hint(b, op);
    if (o)
        __builtin_prefetch(o, 1);
}

static inline void prefetch_near(const fx_book *b, const fx_op *op)
{
    if (op->type == FX_OP_ADD) {
        if (op->side <= 1 && op->price >= b->min_price && op->price <= b->max_price) {
            const uint32_t tail = b->levels[op->side][op->price - b->min_price].tail;
            if (tail)
                __builtin_prefetch(&b->orders[tail], 1);
        }
        return;
    }
    const order_t *o = resting_hint(b, op);
    if (o && o->live) {
        __builtin_prefetch(&b->orders[o->prev], 1);
        __builtin_prefetch(&b->orders[o->next], 1);
        __builtin_prefetch(&b->levels[o->side][o->level], 1);
    }
}

int fx_execute(fx_book *b, const fx_op *ops, size_t first, size_t n_ops, fx_event *ev,
               size_t ev_cap, size_t *next_op, size_t *n_events)
{
    size_t nev = 0;
    size_t i = first;
    int status = FX_OK;
    if (!b || (!ops && n_ops > first) || first > n_ops || n_ops > UINT32_MAX) {
        status = FX_ERR_ARG;
    } else {
        /* A book that fits in cache only pays for the hints. */
        const int hint = b->count >= PF_MIN_ORDERS;
        for (; i < n_ops; i++) {
            if (hint) {
                if (i + PF_FAR < n_ops)
                    prefetch_far(b, &ops[i + PF_FAR]);
                if (i + PF_MID < n_ops)
                    prefetch_mid(b, &ops[i + PF_MID]);
                if (i + PF_NEAR < n_ops)
                    prefetch_near(b, &ops[i + PF_NEAR]);
            }
            const int64_t r = run_op(b, &ops[i], ev + nev, ev_cap - nev, (uint32_t)i);
            if (r < 0) {
                status = (int)r;
                break;
            }
            nev += (size_t)r;
        }
    }
    if (next_op)
        *next_op = i;
    if (n_events)
        *n_events = nev;
    return status;
}

int64_t fx_add(fx_book *b, uint64_t order_id, int side, int64_t price, int64_t qty, int tif,
               uint64_t owner, int64_t display, int stp, fx_event *ev, size_t ev_cap)
{
    return do_add(b, order_id, side, price, qty, tif, owner, display, stp, 0, ev, ev_cap, 0);
}

int64_t fx_market(fx_book *b, uint64_t order_id, int side, int64_t qty, uint64_t owner, int stp,
                  fx_event *ev, size_t ev_cap)
{
    return do_add(b, order_id, side, 0, qty, FX_IOC, owner, 0, stp, 1, ev, ev_cap, 0);
}

int64_t fx_cancel(fx_book *b, uint64_t order_id, fx_event *ev, size_t ev_cap)
{
    return do_cancel(b, order_id, ev, ev_cap, 0);
}

int64_t fx_replace(fx_book *b, uint64_t order_id, int64_t price, int64_t qty, fx_event *ev,
                   size_t ev_cap)
{
    return do_replace(b, order_id, price, qty, ev, ev_cap, 0);
}

void fx_attach_events(fx_book *b, fx_event *ev, size_t ev_cap)
{
    b->att_ev = ev;
    b->att_cap = ev ? ev_cap : 0;
}

int64_t fx_add1(fx_book *b, uint64_t order_id, int side, int64_t price, int64_t qty, int tif)
{
    return do_add(b, order_id, side, price, qty, tif, 0, 0, FX_STP_CANCEL_TAKER, 0, b->att_ev, b->att_cap,
                  0);
}

int64_t fx_add1x(fx_book *b, uint64_t order_id, int side, int64_t price, int64_t qty, int tif,
                 uint64_t owner, int64_t display, int stp)
{
    return do_add(b, order_id, side, price, qty, tif, owner, display, stp, 0, b->att_ev,
                  b->att_cap, 0);
}

int64_t fx_market1(fx_book *b, uint64_t order_id, int side, int64_t qty, uint64_t owner, int stp)
{
    return do_add(b, order_id, side, 0, qty, FX_IOC, owner, 0, stp, 1, b->att_ev, b->att_cap, 0);
}

int64_t fx_cancel1(fx_book *b, uint64_t order_id)
{
    return do_cancel(b, order_id, b->att_ev, b->att_cap, 0);
}

int64_t fx_replace1(fx_book *b, uint64_t order_id, int64_t price, int64_t qty)
{
    return do_replace(b, order_id, price, qty, b->att_ev, b->att_cap, 0);
}

int fx_best(const fx_book *b, int side, int64_t *price, int64_t *qty)
{
    if ((unsigned)side > 1u)
        return 0;
    const int64_t li = b->best[side];
    if (li < 0 || li >= b->n_levels)
        return 0;
    *price = b->min_price + li;
    *qty = b->levels[side][li].visible;
    return 1;
}

size_t fx_depth(const fx_book *b, int side, size_t max_levels, int64_t *out)
{
    if ((unsigned)side > 1u)
        return 0;
    size_t n = 0;
    int64_t li = b->best[side];
    while (n < max_levels && li >= 0 && li < b->n_levels) {
        const level_t *L = &b->levels[side][li];
        out[3 * n] = b->min_price + li;
        out[3 * n + 1] = L->visible;
        out[3 * n + 2] = L->count;
        n++;
        li = side == FX_BUY ? bm_prev(b, FX_BUY, li - 1) : bm_next(b, FX_SELL, li + 1);
    }
    return n;
}

int fx_get(const fx_book *b, uint64_t order_id, fx_order_info *out)
{
    const uint64_t hp = h_find(b, order_id);
    if (hp == H_NONE)
        return 0;
    const order_t *o = &b->orders[b->hash[hp].slot];
    out->order_id = o->id;
    out->owner = o->owner;
    out->price = b->min_price + o->level;
    out->leaves = o->leaves;
    out->visible = o->visible;
    out->display = o->display;
    out->side = o->side;
    out->stp = o->stp;
    return 1;
}

size_t fx_order_count(const fx_book *b)
{
    return b->count;
}

size_t fx_level_orders(const fx_book *b, int side, int64_t price, uint64_t *ids, size_t cap)
{
    if ((unsigned)side > 1u || price < b->min_price || price > b->max_price)
        return 0;
    const level_t *L = &b->levels[side][price - b->min_price];
    size_t n = 0;
    for (uint32_t s = L->head; s; s = b->orders[s].next) {
        if (n < cap)
            ids[n] = b->orders[s].id;
        n++;
    }
    return n;
}

#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            if (msg && msg_cap)                                                             \
                snprintf(msg, msg_cap, __VA_ARGS__);                                        \
            return 1;                                                                       \
        }                                                                                   \
    } while (0)

int fx_check(const fx_book *b, char *msg, size_t msg_cap)
{
    if (msg && msg_cap)
        msg[0] = '\0';
    const order_t *pool = b->orders;
    uint64_t walked = 0;
    uint32_t side_seen[2] = {0, 0};
    uint32_t ice_seen[2] = {0, 0};
    for (int side = 0; side < 2; side++) {
        int64_t first = -1, last = -1;
        for (int64_t li = 0; li < b->n_levels; li++) {
            const level_t *L = &b->levels[side][li];
            const int bit = (int)((b->bits[side][li >> 6] >> (li & 63)) & 1);
            CHECK(bit == (L->count != 0), "side %d level %lld: bitmap bit %d but count %u", side,
                  (long long)li, bit, L->count);
            if (L->count == 0) {
                CHECK(L->head == NIL && L->tail == NIL && L->visible == 0 && L->total == 0,
                      "side %d level %lld: empty level not clean", side, (long long)li);
                continue;
            }
            if (first < 0)
                first = li;
            last = li;
            uint32_t n = 0, prev = NIL;
            int64_t vis = 0, tot = 0;
            uint64_t seq = 0;
            for (uint32_t s = L->head; s; s = pool[s].next) {
                CHECK(s <= b->hwm, "side %d level %lld: slot %u beyond high-water mark", side,
                      (long long)li, s);
                CHECK(n < L->count, "side %d level %lld: queue longer than count %u", side,
                      (long long)li, L->count);
                const order_t *o = &pool[s];
                CHECK(o->live, "order slot %u linked but not live", s);
                CHECK(o->prev == prev, "order %llu: broken prev link", (unsigned long long)o->id);
                CHECK(o->side == side && o->level == (uint32_t)li,
                      "order %llu: recorded side/level disagree with its queue",
                      (unsigned long long)o->id);
                CHECK(o->leaves > 0 && o->leaves <= b->max_qty,
                      "order %llu: leaves %lld out of range", (unsigned long long)o->id,
                      (long long)o->leaves);
                CHECK(o->visible > 0 && o->visible <= o->leaves,
                      "order %llu: visible %lld not in 1..leaves", (unsigned long long)o->id,
                      (long long)o->visible);
                CHECK(o->display > 0 ? o->visible <= o->display : o->visible == o->leaves,
                      "order %llu: visible %lld inconsistent with display %lld",
                      (unsigned long long)o->id, (long long)o->visible, (long long)o->display);
                CHECK(o->iceberg == (o->display > 0), "order %llu: iceberg flag wrong",
                      (unsigned long long)o->id);
                CHECK(o->seq > seq, "order %llu: time priority out of order",
                      (unsigned long long)o->id);
                CHECK(o->seq <= b->seq, "order %llu: stamp from the future",
                      (unsigned long long)o->id);
                const uint64_t hp = h_find(b, o->id);
                CHECK(hp != H_NONE && b->hash[hp].slot == s, "order %llu: id table mismatch",
                      (unsigned long long)o->id);
                seq = o->seq;
                vis += o->visible;
                tot += o->leaves;
                n++;
                prev = s;
                side_seen[side]++;
                ice_seen[side] += o->iceberg;
            }
            CHECK(n == L->count && L->tail == prev, "side %d level %lld: count/tail mismatch",
                  side, (long long)li);
            CHECK(vis == L->visible && tot == L->total,
                  "side %d level %lld: cached quantities %lld/%lld, actual %lld/%lld", side,
                  (long long)li, (long long)L->visible, (long long)L->total, (long long)vis,
                  (long long)tot);
            walked += n;
        }
        for (size_t w = 0; w < b->n_words; w++) {
            const int sbit = (int)((b->sum[side][w >> 6] >> (w & 63)) & 1);
            CHECK(sbit == (b->bits[side][w] != 0), "side %d: summary bitmap word %zu stale", side,
                  w);
        }
        if (side == FX_BUY)
            CHECK(b->best[side] == last, "best bid index %lld, actual %lld",
                  (long long)b->best[side], (long long)last);
        else
            CHECK(b->best[side] == (first < 0 ? b->n_levels : first),
                  "best ask index %lld, actual %lld", (long long)b->best[side],
                  (long long)first);
        CHECK(side_seen[side] == b->side_count[side] && ice_seen[side] == b->n_ice[side],
              "side %d: cached order/iceberg counts wrong", side);
    }
    CHECK(b->best[FX_BUY] < b->best[FX_SELL], "book is crossed");
    CHECK(walked == b->count, "count %u but %llu orders linked", b->count,
          (unsigned long long)walked);
    uint64_t in_table = 0;
    for (uint64_t i = 0; i <= b->hmask; i++) {
        const hslot_t *e = &b->hash[i];
        if (!e->slot)
            continue;
        in_table++;
        CHECK(e->slot <= b->hwm && pool[e->slot].live && pool[e->slot].id == e->id,
              "id table entry %llu points at a wrong slot", (unsigned long long)e->id);
        CHECK(e->dist == ((i - h_home(b, e->id)) & b->hmask),
              "id %llu: recorded probe distance wrong", (unsigned long long)e->id);
        CHECK(h_find(b, e->id) == i, "id %llu unreachable by probing", (unsigned long long)e->id);
    }
    CHECK(in_table == b->count, "id table holds %llu ids, book %u", (unsigned long long)in_table,
          b->count);
    uint64_t free_n = 0;
    for (uint32_t s = b->free_head; s; s = pool[s].next) {
        CHECK(s <= b->hwm && !pool[s].live, "free list holds a live or unissued slot %u", s);
        CHECK(++free_n <= b->hwm, "free list has a cycle");
    }
    CHECK(free_n + b->count == b->hwm, "slots leak: %llu free + %u live != %u issued",
          (unsigned long long)free_n, b->count, b->hwm);
    CHECK(b->hwm <= b->max_orders, "high-water mark beyond capacity");
    return 0;
}
