/*
 * fixoms native order book: one price-time priority book per symbol.
 *
 * C11, no global state, every byte allocated by fx_book_new and nothing in
 * the match loop.  Prices are integer ticks inside an inclusive band fixed at
 * creation; quantities are positive 64-bit integers; order ids are chosen by
 * the caller.  Semantics (event order, reject reasons, STP, icebergs, FOK)
 * are specified in docs/native-book.md and mirrored exactly by
 * native/reference.py, which the tests use as an oracle.
 *
 * A book is not thread safe: exactly one thread may use it at a time.
 *
 * The section between CFFI_BEGIN and CFFI_END is fed verbatim to cffi's
 * cdef(), so it must stay free of preprocessor directives.
 */
#ifndef FIXOMS_NATIVE_BOOK_H
#define FIXOMS_NATIVE_BOOK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CFFI_BEGIN */
typedef struct fx_book fx_book;

enum fx_side { FX_BUY = 0, FX_SELL = 1 };

/* DAY behaves exactly like GTC inside the book; session expiry is the
   caller's business. */
enum fx_tif { FX_GTC = 0, FX_IOC = 1, FX_FOK = 2, FX_DAY = 3 };

enum fx_stp {
    FX_STP_NONE = 0,
    FX_STP_CANCEL_TAKER = 1,
    FX_STP_CANCEL_MAKER = 2,
    FX_STP_CANCEL_BOTH = 3
};

enum fx_op_type {
    FX_OP_ADD = 1,
    FX_OP_MARKET = 2,
    FX_OP_CANCEL = 3,
    FX_OP_REPLACE = 4
};

enum fx_event_kind {
    FX_EV_FILL = 1,
    FX_EV_RESTED = 2,
    FX_EV_CANCELED = 3,
    FX_EV_REPLACED = 4,
    FX_EV_REJECTED = 5
};

enum fx_reason {
    FX_R_NONE = 0,
    FX_R_UNKNOWN_ID = 1,
    FX_R_PRICE_OUT_OF_BAND = 2,
    FX_R_BOOK_FULL = 3,
    FX_R_BAD_QTY = 4,
    FX_R_DUPLICATE_ID = 5,
    FX_R_IOC_UNFILLED = 6,
    FX_R_FOK_UNFILLABLE = 7,
    FX_R_SELF_MATCH = 8,
    FX_R_USER = 9,
    FX_R_BAD_PARAM = 10
};

/* An iceberg may not need more than this many display slices
   (ceil(qty / display)), which bounds the events one operation can emit. */
enum fx_limits { FX_MAX_ICEBERG_SLICES = 100000 };

/* Status codes of the calls themselves (business outcomes are events). */
enum fx_status {
    FX_OK = 0,
    FX_ERR_EVENT_BUFFER = -1,
    FX_ERR_ARG = -2
};

/* One operation, 48 bytes.  Fields an operation does not use are ignored. */
typedef struct fx_op {
    uint8_t  type;      /* fx_op_type */
    uint8_t  side;      /* fx_side (add, market) */
    uint8_t  tif;       /* fx_tif (add) */
    uint8_t  stp;       /* fx_stp (add, market) */
    uint32_t reserved;
    uint64_t order_id;
    int64_t  price;     /* add, replace */
    int64_t  qty;       /* add, market; replace: new leaves */
    int64_t  display;   /* add: iceberg display quantity, 0 = fully visible */
    uint64_t owner;     /* add, market: 0 = no self-match prevention */
} fx_op;

/* One event, 64 bytes.  Fields an event kind does not use are zero. */
typedef struct fx_event {
    uint32_t kind;          /* fx_event_kind */
    uint32_t op_index;      /* index of the operation that produced it */
    uint64_t order_id;      /* fill: the taker */
    uint64_t maker_id;      /* fill only */
    int64_t  price;
    int64_t  qty;
    int64_t  leaves;
    int64_t  maker_leaves;  /* fill only */
    uint32_t reason;        /* fx_reason */
    uint32_t reserved;
} fx_event;

typedef struct fx_order_info {
    uint64_t order_id;
    uint64_t owner;
    int64_t  price;
    int64_t  leaves;
    int64_t  visible;
    int64_t  display;
    uint32_t side;
    uint32_t stp;
} fx_order_info;

/* NULL on bad arguments (empty band, band wider than 2^31-1 ticks,
   max_orders not in 1..2^31-2) or when memory is short. */
fx_book *fx_book_new(int64_t min_price, int64_t max_price, uint32_t max_orders);
void fx_book_free(fx_book *b);

/* Largest accepted quantity: INT64_MAX / max_orders, so no sum can overflow. */
int64_t fx_max_qty(const fx_book *b);

/* Runs ops[first .. n_ops) in order, appending their events to ev.  Stops
   before the first operation whose events would not fit in ev_cap and
   returns FX_ERR_EVENT_BUFFER; that operation is not applied at all.
   *next_op receives the index of the first operation not run, *n_events
   the number of events written. */
int fx_execute(fx_book *b, const fx_op *ops, size_t first, size_t n_ops,
               fx_event *ev, size_t ev_cap, size_t *next_op, size_t *n_events);

/* Single operations: number of events written, or FX_ERR_EVENT_BUFFER
   (nothing applied) when they would not fit in ev_cap. */
int64_t fx_add(fx_book *b, uint64_t order_id, int side, int64_t price, int64_t qty,
               int tif, uint64_t owner, int64_t display, int stp,
               fx_event *ev, size_t ev_cap);
int64_t fx_market(fx_book *b, uint64_t order_id, int side, int64_t qty,
                  uint64_t owner, int stp, fx_event *ev, size_t ev_cap);
int64_t fx_cancel(fx_book *b, uint64_t order_id, fx_event *ev, size_t ev_cap);
int64_t fx_replace(fx_book *b, uint64_t order_id, int64_t price, int64_t qty,
                   fx_event *ev, size_t ev_cap);

/* The per-order path for language bindings, where every argument costs a
   conversion: the event buffer is attached to the book once and the *1
   calls write into it (same semantics and return values as above).
   fx_add1 is fx_add with owner 0, display 0 and FX_STP_CANCEL_TAKER. */
void fx_attach_events(fx_book *b, fx_event *ev, size_t ev_cap);
int64_t fx_add1(fx_book *b, uint64_t order_id, int side, int64_t price, int64_t qty, int tif);
int64_t fx_add1x(fx_book *b, uint64_t order_id, int side, int64_t price, int64_t qty, int tif,
                 uint64_t owner, int64_t display, int stp);
int64_t fx_market1(fx_book *b, uint64_t order_id, int side, int64_t qty, uint64_t owner, int stp);
int64_t fx_cancel1(fx_book *b, uint64_t order_id);
int64_t fx_replace1(fx_book *b, uint64_t order_id, int64_t price, int64_t qty);

/* Queries.  fx_best returns 1 and the level's price and visible quantity,
   or 0 when the side is empty.  fx_depth writes (price, visible qty,
   order count) triples, best level first, and returns the number of levels
   written. */
int fx_best(const fx_book *b, int side, int64_t *price, int64_t *qty);
size_t fx_depth(const fx_book *b, int side, size_t max_levels, int64_t *out);
int fx_get(const fx_book *b, uint64_t order_id, fx_order_info *out);
size_t fx_order_count(const fx_book *b);
/* Ids resting at one price in queue order; returns the level's order count
   (which may exceed cap). */
size_t fx_level_orders(const fx_book *b, int side, int64_t price,
                       uint64_t *ids, size_t cap);
/* Full structural check: 0 when sound, else nonzero and a description in msg. */
int fx_check(const fx_book *b, char *msg, size_t msg_cap);
/* CFFI_END */

#ifdef __cplusplus
}
#endif

#endif /* FIXOMS_NATIVE_BOOK_H */
