/*
 * The C core alone: the same operation mix as bench/book_bench.py (70%
 * passive adds, 25% cancels of resting orders, 5% IOC orders crossing the
 * spread; ~1,000 and ~100,000 resting orders), generated here with its own
 * seeded PRNG, pre-packed, and run through fx_execute in batches.
 *
 *   make bench-c            (or: cc -O3 -std=c11 -Inative native/bench_c.c native/book.c -lm)
 *   bench_c [ops] [seed]
 */
#include "book.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MIN_PRICE 1
#define MAX_PRICE 200000
#define MID 100000
#define BATCH 65536

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t next_u64(rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double next_unit(rng_t *r)
{
    return (double)(next_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

static double now_s(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    uint64_t *live;
    int64_t *where; /* id -> index in live, -1 when not resting */
    size_t n_live;
} live_t;

static void live_add(live_t *l, uint64_t id)
{
    l->where[id] = (int64_t)l->n_live;
    l->live[l->n_live++] = id;
}

static void live_forget(live_t *l, uint64_t id)
{
    int64_t i = l->where[id];
    uint64_t last = l->live[--l->n_live];
    l->where[id] = -1;
    if (last != id) {
        l->live[i] = last;
        l->where[last] = i;
    }
}

static void fail(const char *what)
{
    fprintf(stderr, "bench_c: %s\n", what);
    exit(1);
}

static fx_op passive(rng_t *r, uint64_t id, double spread)
{
    fx_op op = {0};
    op.type = FX_OP_ADD;
    op.side = (uint8_t)(next_u64(r) & 1);
    op.tif = FX_GTC;
    op.stp = FX_STP_CANCEL_TAKER;
    op.order_id = id;
    int64_t off = 1 + (int64_t)(-log(1.0 - next_unit(r)) * spread);
    op.price = op.side == FX_BUY ? MID - off : MID + off;
    op.qty = 1 + (int64_t)(next_u64(r) % 100);
    return op;
}

static void run_variant(const char *name, size_t n_ops, size_t target, double spread, uint64_t seed)
{
    rng_t r = {seed};
    uint32_t max_orders = (uint32_t)(target * 2 > 4096 ? target * 2 : 4096);
    size_t max_id = n_ops + target + 2;
    live_t l = {malloc(sizeof(uint64_t) * max_id), malloc(sizeof(int64_t) * max_id), 0};
    fx_op *pre = malloc(sizeof(fx_op) * target);
    fx_op *ops = malloc(sizeof(fx_op) * n_ops);
    size_t ev_cap = 1 << 16;
    fx_event *ev = malloc(sizeof(fx_event) * ev_cap);
    fx_book *scratch = fx_book_new(MIN_PRICE, MAX_PRICE, max_orders);
    if (!l.live || !l.where || !pre || !ops || !ev || !scratch)
        fail("out of memory");
    for (size_t i = 0; i < max_id; i++)
        l.where[i] = -1;
    uint64_t next_id = 1;
    for (size_t i = 0; i < target; i++) {
        pre[i] = passive(&r, next_id, spread);
        live_add(&l, next_id++);
        if (fx_execute(scratch, &pre[i], 0, 1, ev, ev_cap, NULL, NULL) != FX_OK)
            fail("prefill");
    }
    size_t n_add = 0, n_cancel = 0, n_cross = 0;
    for (size_t i = 0; i < n_ops; i++) {
        double x = next_unit(&r);
        fx_op op;
        if (x < 0.70 || l.n_live == 0) {
            op = passive(&r, next_id, spread);
            live_add(&l, next_id++);
            n_add++;
        } else if (x < 0.95) {
            uint64_t id = l.live[next_u64(&r) % l.n_live];
            op = (fx_op){0};
            op.type = FX_OP_CANCEL;
            op.order_id = id;
            live_forget(&l, id);
            n_cancel++;
        } else {
            op = (fx_op){0};
            op.type = FX_OP_ADD;
            op.side = (uint8_t)(next_u64(&r) & 1);
            op.tif = FX_IOC;
            op.stp = FX_STP_CANCEL_TAKER;
            op.order_id = next_id++;
            op.price = op.side == FX_BUY ? MID + 5000 : MID - 5000;
            double q = (0.5 + next_unit(&r)) * 455.0 * (double)l.n_live / (double)target;
            op.qty = q < 1.0 ? 1 : (int64_t)q;
            n_cross++;
        }
        size_t n_ev = 0;
        if (fx_execute(scratch, &op, 0, 1, ev, ev_cap, NULL, &n_ev) != FX_OK)
            fail("generation");
        if (op.tif == FX_IOC)
            for (size_t k = 0; k < n_ev; k++)
                if (ev[k].kind == FX_EV_FILL && ev[k].maker_leaves == 0)
                    live_forget(&l, ev[k].maker_id);
        ops[i] = op;
    }
    fx_book_free(scratch);

    double best = 1e30;
    size_t events = 0, resting = 0;
    fx_event *bev = malloc(sizeof(fx_event) * BATCH * 16);
    if (!bev)
        fail("out of memory");
    for (int rep = 0; rep < 3; rep++) {
        fx_book *b = fx_book_new(MIN_PRICE, MAX_PRICE, max_orders);
        if (!b)
            fail("out of memory");
        for (size_t i = 0; i < target; i += BATCH) {
            size_t n = target - i < BATCH ? target - i : BATCH;
            if (fx_execute(b, pre + i, 0, n, bev, (size_t)BATCH * 16, NULL, NULL) != FX_OK)
                fail("prefill run");
        }
        events = 0;
        double t0 = now_s();
        for (size_t i = 0; i < n_ops; i += BATCH) {
            size_t n = n_ops - i < BATCH ? n_ops - i : BATCH, nev = 0;
            if (fx_execute(b, ops + i, 0, n, bev, (size_t)BATCH * 16, NULL, &nev) != FX_OK)
                fail("event buffer too small");
            events += nev;
        }
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
        resting = fx_order_count(b);
        char msg[256];
        if (fx_check(b, msg, sizeof msg))
            fail(msg);
        fx_book_free(b);
    }
    printf("%-7s %zu ops (%zu add / %zu cancel / %zu crossing), ~%zu resting: "
           "%.2f M ops/s, %.1f ns/op, %zu events, %zu resting at end\n",
           name, n_ops, n_add, n_cancel, n_cross, target, (double)n_ops / best / 1e6,
           best * 1e9 / (double)n_ops, events, resting);
    free(bev);
    free(l.live);
    free(l.where);
    free(pre);
    free(ops);
    free(ev);
}

int main(int argc, char **argv)
{
    size_t n_ops = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 7;
    printf("C core alone, best of 3, batches of %d (target >= 20M ops/s)\n", BATCH);
    run_variant("normal", n_ops, 1000, 8.0, seed);
    run_variant("deep", n_ops, 100000, 400.0, seed);
    return 0;
}
