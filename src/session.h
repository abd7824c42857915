/*
 * session.h - private types and helpers of the sessionizer, shared by
 * session.c (events into sessions), session_close.c (a closing session's
 * features and the page statistics) and session_features.c (calendar, time
 * features, code tables, session columns). Never installed.
 */
#ifndef OPECOM_SESSION_H
#define OPECOM_SESSION_H

#include <stdint.h>

#include "internal.h"

#define OPECOM_MS_PER_DAY 86400000LL
#define OPECOM_NONE UINT32_MAX
#define OPECOM_CHUNK_EVENTS 15
#define OPECOM_TEXT_BLOCK (64 * 1024)

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). */
int64_t opecom_days_from_civil(int64_t y, unsigned m, unsigned d);

/* Month name as the UCI data spells it ("Jan" .. "Dec", "June"); m 1..12. */
const char *opecom_month_name(unsigned m);

/* Fills the time features of a session that starts at local time `local_ms`
 * (UTC + the configured offset): month name, weekend flag, SpecialDay from
 * the calendar. */
void opecom_time_features(int64_t local_ms, const opecom_special_day *cal, uint32_t n_cal,
                          const char **month, int *weekend, double *special_day);

/* SpecialDay for a session `d` days before a special day (d >= 0). */
double opecom_special_day_value(int64_t d);

/* A code table, sorted for binary search. */
typedef struct opecom_code_table {
    opecom_code_entry *entries; /* sorted by (field, text); texts owned */
    uint32_t n;
    char *text;                 /* every text, one allocation */
} opecom_code_table;

/* Copies and sorts cfg's table. @return OPECOM_OK, OPECOM_EINVAL naming the
 * entry, OPECOM_ENOMEM. */
opecom_status opecom_code_table_init(opecom_code_table *t, const opecom_code_entry *e,
                                     uint32_t n, opecom_error *err);
void opecom_code_table_free(opecom_code_table *t);

/* Resolves an event's text for `field`: *code = 0 when absent (NULL or
 * ""), the number for "1".."999", the table's code, or `unknown`.
 * @return OPECOM_OK or OPECOM_EINVAL (too long, or a number out of range). */
opecom_status opecom_code_resolve(const opecom_code_table *t, opecom_code_field field,
                                  const char *text, uint16_t unknown, uint16_t *code,
                                  opecom_error *err);

/* ===================================================================== *
 * The sessionizer's state (session.c, session_close.c)
 * ===================================================================== */

#define EV_HAS_DURATION 1u

typedef struct sev {
    int64_t t;
    double val;     /* duration_s (page view) or revenue (purchase) */
    uint32_t page;  /* page index, OPECOM_NONE for a purchase */
    uint32_t flags; /* EV_* */
} sev;

typedef struct chunk {
    struct chunk *next;
    uint32_t n;
    sev ev[OPECOM_CHUNK_EVENTS];
} chunk;

enum { REC_FREE = 0, REC_OPEN = 1, REC_TOMB = 2 };

typedef struct srec {
    uint64_t hash;
    uint64_t seq;           /* creation order: the last tie-break */
    int64_t first, last;    /* event time span */
    uint32_t next;          /* hash chain, or free list */
    uint32_t heap_pos;      /* open: index in the heap */
    uint32_t part;
    uint32_t n_events;
    uint8_t state;
    uint8_t unsorted;       /* events did not arrive in time order */
    uint8_t vlen, slen;
    uint16_t code[4];       /* 0: none yet */
    int64_t code_t[4];      /* time of the event code[] came from */
    chunk *head, *tail;
    char visitor[OPECOM_ID_MAX];
    char session[OPECOM_ID_MAX];
} srec;

typedef struct page {
    uint64_t hash;
    uint64_t mark;          /* close serial of the last session that counted it */
    uint64_t entrances, bounces, views, exits, uniq;
    double value;           /* revenue after a first view, summed over sessions */
    const char *id;
    uint32_t len;
    uint32_t next;          /* hash chain */
    uint8_t type;           /* opecom_page_type */
} page;

typedef struct sortev {
    sev e;
    uint32_t ord;           /* arrival order within the session */
} sortev;

typedef struct text_block {
    struct text_block *next;
    size_t used;
    char data[OPECOM_TEXT_BLOCK];
} text_block;

struct opecom_sessionizer {
    /* configuration */
    int64_t timeout_ms;
    int64_t offset_ms;
    opecom_special_day *calendar;
    uint32_t n_calendar;
    opecom_code_table codes;
    uint16_t unknown_code[4];

    int64_t watermark;
    int has_watermark;
    uint64_t seq;
    uint64_t close_serial;

    /* session records, hash on key, deadline heap, tombstone queue */
    srec *recs;
    uint32_t n_recs, cap_recs, free_rec;
    uint32_t *buckets;
    uint32_t n_buckets, n_live;
    uint32_t *heap;
    uint32_t heap_n, heap_cap;
    uint32_t *tombs;        /* ring */
    uint32_t tomb_head, tomb_n, tomb_cap;

    /* event chunks */
    chunk *free_chunks;
    void **slabs;
    uint32_t n_slabs, cap_slabs;

    /* page statistics */
    page *pages;
    uint32_t n_pages, cap_pages;
    uint32_t *page_buckets;
    uint32_t n_page_buckets;
    text_block *text;

    /* visitor history: hashes, open addressing, 0 = empty */
    uint64_t *visitors;
    uint64_t n_visitors, cap_visitors;

    /* closed sessions waiting for opecom_sessionizer_next (ring) */
    opecom_session *outq;
    uint32_t out_head, out_n, out_cap;

    /* scratch for closing one session */
    sortev *scratch;
    double *suffix;
    uint32_t cap_scratch;

    opecom_session_stats stats;
};

static inline uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

#define FNV_BASIS 0xcbf29ce484222325ULL

#define OPECOM_FNV_BASIS 0xcbf29ce484222325ULL

/* Grows *p (an array of `size`-byte items, capacity *cap) to hold `need`
 * items, doubling. @return 0, or -1 out of memory (*p unchanged). */
int opecom_grow(void **p, uint32_t *cap, uint32_t need, size_t size);

/* session_close.c: pages, visitors, and the features of a closing session */

/* The index of page (type, id), created with empty statistics when new;
 * OPECOM_NONE when out of memory. */
uint32_t opecom_page_get(opecom_sessionizer *s, opecom_page_type type, const char *id,
                         size_t len);
/* Makes room for `more` new visitors. @return 0, or -1 out of memory. */
int opecom_visitors_reserve(opecom_sessionizer *s, uint64_t more);
/* Sorts record r's events into s->scratch and writes its session (features
 * from the statistics as they stand) to *o. With `commit`, the session then
 * joins the statistics and the visitor history (it is closing); without, they
 * are only read (a peek at an open session). Never fails: the space was
 * reserved when its events came. */
void opecom_session_close_features(opecom_sessionizer *s, uint32_t r, opecom_session *o,
                                   int commit);


#endif
