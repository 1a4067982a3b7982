/* spanwire: see spanwire.h. Reference semantics: collector/receiver/spans.py. */
#include "spanwire.h"

#include <stdlib.h>
#include <string.h>

#define MAX_NS ((uint64_t)INT64_MAX)
#define SPAN_KIND_SERVER 2
#define SPAN_KIND_CONSUMER 5

/* Message indices fixed by the schema the binding builds (fastspans.py). */
enum { M_REQ = 0, M_RS, M_RES, M_KV, M_AV, M_SS, M_SPAN, M_STATUS };

/* What a message on the stack is, for the few fields that are read. */
enum { R_NONE = 0, R_REQ, R_RS, R_RES, R_RES_KV, R_RES_AV, R_SS, R_SPAN, R_SPAN_KV, R_SPAN_AV, R_STATUS };

typedef struct {
  const uint8_t *end;  /* the enclosing limit: a delimited message's end, or the parent's for a group */
  int32_t msg;         /* schema index; -1: an unknown group (every field unknown) */
  uint32_t group;      /* field number of an open group; 0 for a delimited message */
  uint8_t role;
} frame;

typedef struct {
  uint8_t *p;
  size_t len, cap;
} buf;

static int buf_reserve(buf *b, size_t more) {
  if (b->len + more <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more) {
    if (cap > ((size_t)1 << 40)) return -1;
    cap *= 2;
  }
  uint8_t *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int buf_put(buf *b, const void *src, size_t n) {
  if (buf_reserve(b, n)) return -1;
  if (n) memcpy(b->p + b->len, src, n);
  b->len += n;
  return 0;
}

static int buf_u32(buf *b, uint32_t v) { return buf_put(b, &v, 4); }

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

/* ---- wire primitives: every read is checked against `end` ---------------- */

/* A value varint: at most 10 bytes; the bits past 64 are dropped, as upb does. */
static const uint8_t *rd_varint(const uint8_t *p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 10; i++) {
    if (p >= end) return NULL;
    uint8_t b = *p++;
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *out = v;
      return p;
    }
  }
  return NULL;
}

/* A tag or a length: at most 5 bytes and below 2**32. */
static const uint8_t *rd_varint32(const uint8_t *p, const uint8_t *end, uint32_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 5; i++) {
    if (p >= end) return NULL;
    uint8_t b = *p++;
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      if (v > UINT32_MAX) return NULL;
      *out = (uint32_t)v;
      return p;
    }
  }
  return NULL;
}

static uint64_t ld64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* UTF-8 as upb checks it: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* ASCII runs, 8 bytes at a time */
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      if (i + 2 >= n) return 0;
      uint8_t c1 = s[i + 1], c2 = s[i + 2];
      if ((c1 & 0xC0) != 0x80 || (c2 & 0xC0) != 0x80) return 0;
      if (c == 0xE0 && c1 < 0xA0) return 0; /* overlong */
      if (c == 0xED && c1 > 0x9F) return 0; /* surrogate */
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      if (i + 3 >= n) return 0;
      uint8_t c1 = s[i + 1], c2 = s[i + 2], c3 = s[i + 3];
      if ((c1 & 0xC0) != 0x80 || (c2 & 0xC0) != 0x80 || (c3 & 0xC0) != 0x80) return 0;
      if (c == 0xF0 && c1 < 0x90) return 0; /* overlong */
      if (c == 0xF4 && c1 > 0x8F) return 0; /* past U+10FFFF */
      i += 4;
    } else {
      return 0;
    }
  }
  return 1;
}

/* Code points in valid UTF-8 (what Python's len() counts). */
static uint64_t cp_len(const uint8_t *s, size_t n) {
  uint64_t k = 0;
  for (size_t i = 0; i < n; i++) k += (s[i] & 0xC0) != 0x80;
  return k;
}

/* Bytes of the first `max` code points. */
static size_t cp_prefix(const uint8_t *s, size_t n, uint64_t max) {
  uint64_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      if (k == max) return i;
      k++;
    }
  }
  return n;
}

/* ---- AnyValue -> label text, as values.any_to_str ------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Appends the text of v to b. Returns 0, -1 out of memory, -2 needs the reference path. */
static int val_text(const sw_plan *pl, const uint8_t *body, const sw_val *v, buf *b) {
  char tmp[64];
  switch (v->kind) {
    case AV_STR:
      return buf_put(b, body + v->off, v->len);
    case AV_BOOL:
      return v->i ? buf_put(b, "true", 4) : buf_put(b, "false", 5);
    case AV_INT: {
      uint64_t u = v->i < 0 ? (uint64_t)0 - (uint64_t)v->i : (uint64_t)v->i;
      int k = 0;
      do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
      } while (u);
      if (v->i < 0) tmp[k++] = '-';
      if (buf_reserve(b, (size_t)k)) return -1;
      while (k) b->p[b->len++] = (uint8_t)tmp[--k];
      return 0;
    }
    case AV_DOUBLE: {
      if (!pl->fmt_double) return -2;
      int k = pl->fmt_double(pl->fmt_ctx, v->d, tmp, (int)sizeof tmp);
      if (k < 0 || k > (int)sizeof tmp) return -2;
      return buf_put(b, tmp, (size_t)k);
    }
    case AV_BYTES: {
      const uint8_t *s = body + v->off;
      size_t n = v->len, out = 4 * ((n + 2) / 3);
      if (buf_reserve(b, out)) return -1;
      uint8_t *o = b->p + b->len;
      size_t i = 0;
      for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = B64[w >> 18];
        *o++ = B64[(w >> 12) & 63];
        *o++ = B64[(w >> 6) & 63];
        *o++ = B64[w & 63];
      }
      if (n - i == 1) {
        uint32_t w = (uint32_t)s[i] << 16;
        *o++ = B64[w >> 18];
        *o++ = B64[(w >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
      } else if (n - i == 2) {
        uint32_t w = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *o++ = B64[w >> 18];
        *o++ = B64[(w >> 12) & 63];
        *o++ = B64[(w >> 6) & 63];
        *o++ = '=';
      }
      b->len += out;
      return 0;
    }
    case AV_ARRAY:
    case AV_KVLIST:
      return -2; /* JSON text: left to the reference path */
    default:     /* no value, or a string-table index: "" */
      return 0;
  }
}

/* Length in code points of the text of v, or -1 (needs the reference path). */
static int64_t val_cp_len(const sw_plan *pl, const uint8_t *body, const sw_val *v) {
  switch (v->kind) {
    case AV_STR:
      return (int64_t)cp_len(body + v->off, v->len);
    case AV_BYTES:
      return (int64_t)(4 * (((uint64_t)v->len + 2) / 3));
    case AV_ARRAY:
    case AV_KVLIST:
      return -1;
    case AV_DOUBLE: {
      char tmp[64];
      if (!pl->fmt_double) return -1;
      int k = pl->fmt_double(pl->fmt_ctx, v->d, tmp, (int)sizeof tmp);
      return (k < 0 || k > (int)sizeof tmp) ? -1 : k;
    }
    case AV_BOOL:
    case AV_INT: {
      uint8_t tmp[32];
      buf b = {tmp, 0, sizeof tmp};
      if (val_text(pl, NULL, v, &b)) return -1;
      return (int64_t)b.len;
    }
    default:
      return 0;
  }
}

/* ---- per-request state ----------------------------------------------------- */

typedef struct {
  sw_val service;
  uint8_t service_set, complex;
  sw_val *dims;        /* n_dims */
  uint8_t *dims_set;   /* n_dims */
} res_t;

typedef struct {
  uint32_t res;
  uint32_t name_off, name_len;
  int32_t kind, status;
  uint64_t end, dur;
  size_t vals;         /* index into the accepted-value arrays (n_slots each) */
  uint32_t tid_off, tid_len, sid_off, sid_len;  /* trace_id and span_id in the body */
} acc_t;

typedef struct {
  const sw_plan *pl;
  const uint8_t *body;
  sw_result *r;
  /* resources */
  res_t *res;
  size_t n_res, res_cap;
  sw_val *res_dims;
  uint8_t *res_dims_set;
  size_t res_dims_cap;
  /* the current span */
  uint32_t name_off, name_len;
  uint32_t tid_off, tid_len, sid_off, sid_len;
  int32_t kind, status;
  uint64_t start, end;
  uint8_t long_, complex, done;
  uint32_t missing;
  sw_val *vals;        /* n_slots */
  uint8_t *vals_set;   /* n_slots */
  /* the current key/value pair */
  const uint8_t *key;
  uint32_t key_len;
  sw_val av;
  /* accepted spans, before their keys are built */
  acc_t *acc;
  size_t n_acc, acc_cap;
  sw_val *acc_vals;
  uint8_t *acc_set;
  size_t acc_vals_cap;
} walk_t;

static inline int eq_bytes(const uint8_t *a, const uint8_t *b, uint32_t n) {
  for (; n >= 8; a += 8, b += 8, n -= 8) {
    uint64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    if (x != y) return 0;
  }
  while (n--)
    if (*a++ != *b++) return 0;
  return 1;
}

static inline int wanted_find(const sw_wanted *w, uint32_t n, const uint8_t *key, uint32_t len) {
  if (!len) return -1; /* no wanted key is empty */
  for (uint32_t i = 0; i < n; i++)
    if (w[i].key_len == len && w[i].key[len - 1] == key[len - 1] && w[i].key[0] == key[0] &&
        eq_bytes(w[i].key, key, len))
      return (int)i;
  return -1;
}

static int new_resource(walk_t *w) {
  uint32_t nd = w->pl->n_dims;
  if (grow((void **)&w->res, &w->res_cap, w->n_res + 1, sizeof(res_t))) return -1;
  size_t need = (w->n_res + 1) * (nd ? nd : 1);
  size_t cap_before = w->res_dims_cap;
  if (grow((void **)&w->res_dims, &w->res_dims_cap, need, sizeof(sw_val))) return -1;
  if (w->res_dims_cap != cap_before) {
    uint8_t *s = realloc(w->res_dims_set, w->res_dims_cap);
    if (!s) return -1;
    w->res_dims_set = s;
  }
  res_t *r = &w->res[w->n_res];
  memset(r, 0, sizeof *r);
  memset(w->res_dims_set + w->n_res * (nd ? nd : 1), 0, nd ? nd : 1);
  w->n_res++;
  w->r->n_res = (uint32_t)w->n_res;
  return 0;
}

static void resource_attr(walk_t *w) {
  const sw_plan *pl = w->pl;
  res_t *r = &w->res[w->n_res - 1];
  int cx = w->av.kind == AV_ARRAY || w->av.kind == AV_KVLIST;
  if (w->key_len == 12 && memcmp(w->key, "service.name", 12) == 0) {
    r->service = w->av;
    r->service_set = 1;
    r->complex |= cx;
    return;
  }
  int i = wanted_find(pl->res_dims, pl->n_res_dims, w->key, w->key_len);
  if (i >= 0) {
    size_t d = (w->n_res - 1) * pl->n_dims + (size_t)pl->res_dims[i].slot;
    w->res_dims[d] = w->av;
    w->res_dims_set[d] = 1;
    r->complex |= cx;
  }
}

/* One attribute of the current span, as the reference's scan: the first value
 * of a slot counts; a primary key replaces an old-convention one; once every
 * slot has a value the scan stops. */
static void span_attr(walk_t *w) {
  const sw_plan *pl = w->pl;
  if (w->done) return;
  int i = wanted_find(pl->wanted, pl->n_wanted, w->key, w->key_len);
  if (i < 0) return;
  uint32_t slot = (uint32_t)pl->wanted[i].slot;
  if (!w->vals_set[slot]) {
    w->missing--;
  } else if (!pl->wanted[i].primary) {
    return;
  }
  int64_t n = val_cp_len(pl, w->body, &w->av);
  if (n < 0)
    w->complex = 1;
  else if ((uint64_t)n > pl->max_len)
    w->long_ = 1;
  w->vals[slot] = w->av;
  w->vals_set[slot] = 1;
  if (!w->missing) w->done = 1;
}

static void span_begin(walk_t *w) {
  w->name_off = w->name_len = 0;
  w->tid_off = w->tid_len = w->sid_off = w->sid_len = 0;
  w->kind = w->status = 0;
  w->start = w->end = 0;
  w->long_ = w->complex = w->done = 0;
  w->missing = w->pl->n_slots;
  memset(w->vals_set, 0, w->pl->n_slots);
  w->r->received++;
}

static int span_end(walk_t *w) {
  sw_result *r = w->r;
  const sw_plan *pl = w->pl;
  if (w->kind != SPAN_KIND_SERVER && w->kind != SPAN_KIND_CONSUMER) return 0;
  if (!w->start || !w->end) {
    r->bad_time++;
    return 0;
  }
  if (w->end < w->start) {
    r->bad_order++;
    return 0;
  }
  if (w->end > MAX_NS) {
    r->future++;
    return 0;
  }
  if (w->complex) r->fallback = 1; /* the reference would have read this value */
  if (w->long_ || cp_len(w->body + w->name_off, w->name_len) > pl->max_len) {
    r->too_long++;
    return 0;
  }
  if (grow((void **)&w->acc, &w->acc_cap, w->n_acc + 1, sizeof(acc_t))) return -1;
  size_t ns = pl->n_slots, need = (w->n_acc + 1) * ns;
  size_t cap_before = w->acc_vals_cap;
  if (grow((void **)&w->acc_vals, &w->acc_vals_cap, need ? need : 1, sizeof(sw_val))) return -1;
  if (w->acc_vals_cap != cap_before) {
    uint8_t *s = realloc(w->acc_set, w->acc_vals_cap);
    if (!s) return -1;
    w->acc_set = s;
  }
  acc_t *a = &w->acc[w->n_acc];
  a->res = (uint32_t)(w->n_res - 1);
  a->name_off = w->name_off;
  a->name_len = w->name_len;
  a->kind = w->kind;
  a->status = w->status;
  a->end = w->end;
  a->dur = w->end - w->start;
  a->vals = w->n_acc * ns;
  a->tid_off = w->tid_off;
  a->tid_len = w->tid_len;
  a->sid_off = w->sid_off;
  a->sid_len = w->sid_len;
  memcpy(w->acc_vals + a->vals, w->vals, ns * sizeof(sw_val));
  memcpy(w->acc_set + a->vals, w->vals_set, ns);
  w->n_acc++;
  return 0;
}

/* The exemplar ids of an accepted span, as exemplars.id_row: a 16-byte trace id
 * that is not all zero and an 8-byte span id, else zeros. Offsets and lengths
 * were checked against the body when the fields were read. */
static void span_ids(const acc_t *a, const uint8_t *body, uint8_t *out) {
  memset(out, 0, SW_ID_BYTES);
  if (a->tid_len != 16 || a->sid_len != 8) return;
  const uint8_t *t = body + a->tid_off;
  uint8_t any = 0;
  for (int i = 0; i < 16; i++) any |= t[i];
  if (!any) return;
  memcpy(out, t, 16);
  memcpy(out + 16, body + a->sid_off, 8);
}

/* ---- the walk ------------------------------------------------------------- */

#define FAIL(msg)             \
  do {                        \
    r->error = (msg);         \
    r->error_at = (size_t)(p - buf0); \
    goto fail;                \
  } while (0)
#define NOMEM()   \
  do {            \
    r->oom = 1;   \
    goto fail;    \
  } while (0)

static int is_varint_type(int t) {
  return t == SW_T_INT64 || t == SW_T_UINT64 || t == SW_T_INT32 || t == SW_T_BOOL || t == SW_T_UINT32 ||
         t == SW_T_ENUM || t == SW_T_SINT32 || t == SW_T_SINT64;
}
static int is_fixed64_type(int t) { return t == SW_T_DOUBLE || t == SW_T_FIXED64 || t == SW_T_SFIXED64; }
static int is_fixed32_type(int t) { return t == SW_T_FLOAT || t == SW_T_FIXED32 || t == SW_T_SFIXED32; }

static uint8_t child_role(uint8_t parent, uint32_t field) {
  switch (parent) {
    case R_REQ: return field == 1 ? R_RS : R_NONE;
    case R_RS: return field == 1 ? R_RES : field == 2 ? R_SS : R_NONE;
    case R_RES: return field == 1 ? R_RES_KV : R_NONE;
    case R_RES_KV: return field == 2 ? R_RES_AV : R_NONE;
    case R_SS: return field == 2 ? R_SPAN : R_NONE;
    case R_SPAN: return field == 9 ? R_SPAN_KV : field == 15 ? R_STATUS : R_NONE;
    case R_SPAN_KV: return field == 2 ? R_SPAN_AV : R_NONE;
    default: return R_NONE;
  }
}

/* The common encoding of a KeyValue, parsed straight: key, then a value with one scalar
 * member. Returns 1 and fills key and av when the bytes are exactly that and
 * valid; 0 otherwise, and then the generic walk decides (it also finds every
 * error). Nothing is changed before it returns 1. */
static int fast_kv(const uint8_t *s, const uint8_t *e, const uint8_t *buf0, const uint8_t **key,
                   uint32_t *key_len, sw_val *av) {
  uint32_t n;
  if (s >= e || *s != 0x0A) return 0; /* key, field 1, length-delimited */
  s++;
  if (s >= e || *s >= 0x80) return 0;
  n = *s++;
  if ((size_t)(e - s) < n || !utf8_ok(s, n)) return 0;
  const uint8_t *k = s;
  uint32_t kl = n;
  s += n;
  sw_val v = {0};
  if (s < e) {
    if (*s != 0x12) return 0; /* value, field 2, length-delimited */
    s++;
    if (s >= e || *s >= 0x80) return 0;
    n = *s++;
    if ((size_t)(e - s) != n) return 0; /* the value ends the pair */
    if (n) {
      uint8_t t = *s++;
      switch (t) {
        case 0x0A: /* string_value */
          if (s >= e || *s >= 0x80) return 0;
          n = *s++;
          if ((size_t)(e - s) != n || !utf8_ok(s, n)) return 0;
          v.kind = AV_STR;
          v.off = (uint32_t)(s - buf0);
          v.len = n;
          break;
        case 0x10: /* bool_value */
        case 0x18: { /* int_value */
          uint64_t x;
          const uint8_t *q = rd_varint(s, e, &x);
          if (!q || q != e) return 0;
          v.kind = t == 0x10 ? AV_BOOL : AV_INT;
          v.i = t == 0x10 ? (x != 0) : (int64_t)x;
          break;
        }
        case 0x21: /* double_value */
          if (e - s != 8) return 0;
          {
            uint64_t x = ld64(s);
            v.kind = AV_DOUBLE;
            memcpy(&v.d, &x, 8);
          }
          break;
        default:
          return 0;
      }
    }
  }
  *key = k;
  *key_len = kl;
  *av = v;
  return 1;
}

static int walk(walk_t *w, const uint8_t *buf0, size_t len) {
  sw_result *r = w->r;
  const sw_plan *pl = w->pl;
  /* the enclosing frames; the current one lives in the locals below */
  frame st[SW_MAX_DEPTH + 1];
  int top = 0;
  const uint8_t *p = buf0;
  const uint8_t *end = buf0 + len;
  int32_t msg = M_REQ;
  uint32_t group = 0;
  uint8_t role = R_REQ;
  const sw_field *fields = pl->msgs[M_REQ].fields;
  uint32_t nfields = pl->msgs[M_REQ].n;

#define PUSH(new_end, new_msg, new_group, new_role)                                  \
  do {                                                                               \
    if (top >= SW_MAX_DEPTH) FAIL("nested too deeply");                              \
    st[top].end = end;                                                               \
    st[top].msg = msg;                                                               \
    st[top].group = group;                                                           \
    st[top].role = role;                                                             \
    top++;                                                                           \
    end = (new_end);                                                                 \
    msg = (new_msg);                                                                 \
    group = (new_group);                                                             \
    role = (new_role);                                                               \
    if (msg >= 0) {                                                                  \
      fields = pl->msgs[msg].fields;                                                 \
      nfields = pl->msgs[msg].n;                                                     \
    } else {                                                                         \
      fields = NULL;                                                                 \
      nfields = 0;                                                                   \
    }                                                                                \
  } while (0)
#define POP()                                                                        \
  do {                                                                               \
    top--;                                                                           \
    end = st[top].end;                                                               \
    msg = st[top].msg;                                                               \
    group = st[top].group;                                                           \
    role = st[top].role;                                                             \
    if (msg >= 0) {                                                                  \
      fields = pl->msgs[msg].fields;                                                 \
      nfields = pl->msgs[msg].n;                                                     \
    } else {                                                                         \
      fields = NULL;                                                                 \
      nfields = 0;                                                                   \
    }                                                                                \
  } while (0)

  for (;;) {
    if (p == end) {
      if (msg < 0) FAIL("group without its end");
      /* a delimited message ends */
      switch (role) {
        case R_RES_KV: resource_attr(w); break;
        case R_SPAN_KV: span_attr(w); break;
        case R_SPAN:
          if (span_end(w)) NOMEM();
          break;
        default: break;
      }
      if (top == 0) break;
      POP();
      continue;
    }
    uint32_t tag;
    const uint8_t *q;
    if (*p < 0x80) {
      tag = *p;
      q = p + 1;
    } else {
      q = rd_varint32(p, end, &tag);
      if (!q) FAIL("invalid tag");
    }
    uint32_t num = tag >> 3, wt = tag & 7;
    /* upb refuses field number 0 in messages, but skips it inside unknown groups */
    if (num == 0 && msg >= 0) FAIL("field number 0");
    const sw_field *fd = num < nfields && fields[num].type ? &fields[num] : NULL;
    int t = fd ? fd->type : 0;
    switch (wt) {
      case 0: { /* varint */
        uint64_t v;
        const uint8_t *e;
        if (q < end && *q < 0x80) {
          v = *q;
          e = q + 1;
        } else {
          e = rd_varint(q, end, &v);
          if (!e) FAIL("invalid varint");
        }
        if (role != R_NONE && is_varint_type(t)) {
          if (role == R_SPAN && num == 6) w->kind = (int32_t)(uint32_t)v;
          else if (role == R_STATUS && num == 3) w->status = (int32_t)(uint32_t)v;
          else if (role == R_RES_AV || role == R_SPAN_AV) {
            if (num == 2) { w->av.kind = AV_BOOL; w->av.i = v != 0; }
            else if (num == 3) { w->av.kind = AV_INT; w->av.i = (int64_t)v; }
            else if (num == 8) { w->av.kind = AV_STRIDX; }
          }
        }
        p = e;
        break;
      }
      case 1: { /* 64-bit */
        if (end - q < 8) FAIL("truncated fixed64");
        if (role != R_NONE && is_fixed64_type(t)) {
          uint64_t v = ld64(q);
          if (role == R_SPAN && num == 7) w->start = v;
          else if (role == R_SPAN && num == 8) w->end = v;
          else if ((role == R_RES_AV || role == R_SPAN_AV) && num == 4) {
            w->av.kind = AV_DOUBLE;
            memcpy(&w->av.d, &v, 8);
          }
        }
        p = q + 8;
        break;
      }
      case 5: /* 32-bit */
        if (end - q < 4) FAIL("truncated fixed32");
        p = q + 4;
        break;
      case 2: { /* length-delimited */
        uint32_t n;
        const uint8_t *s;
        if (q < end && *q < 0x80) {
          n = *q;
          s = q + 1;
        } else {
          s = rd_varint32(q, end, &n);
          if (!s) FAIL("invalid length");
        }
        if ((uint64_t)(end - s) < n) FAIL("length past the end of its message");
        p = s;
        if (t == SW_T_MESSAGE) {
          uint8_t cr = child_role(role, num);
          if (fd->sub == M_KV && top + 2 <= SW_MAX_DEPTH) {
            const uint8_t *k;
            uint32_t kl;
            sw_val v;
            if (fast_kv(s, s + n, buf0, &k, &kl, &v)) {
              if (cr == R_SPAN_KV || cr == R_RES_KV) {
                w->key = k;
                w->key_len = kl;
                w->av = v;
                if (cr == R_SPAN_KV) span_attr(w);
                else resource_attr(w);
              }
              p = s + n;
              break;
            }
          }
          if (role == R_RES_AV || role == R_SPAN_AV) {
            if (num == 5) w->av.kind = AV_ARRAY;
            else if (num == 6) w->av.kind = AV_KVLIST;
          }
          switch (cr) {
            case R_RS:
              if (new_resource(w)) NOMEM();
              break;
            case R_RES:
              if (grow((void **)&r->ranges, &r->ranges_cap, r->n_ranges + 1, sizeof(sw_range))) NOMEM();
              r->ranges[r->n_ranges].res = (uint32_t)(w->n_res - 1);
              r->ranges[r->n_ranges].off = (uint32_t)(s - buf0);
              r->ranges[r->n_ranges].len = n;
              r->n_ranges++;
              break;
            case R_RES_KV:
            case R_SPAN_KV:
              w->key = NULL;
              w->key_len = 0;
              w->av.kind = AV_NONE;
              break;
            case R_SPAN:
              span_begin(w);
              break;
            default:
              break;
          }
          PUSH(s + n, fd->sub, 0, cr);
          continue; /* p stays at the start of the submessage */
        }
        if (t == SW_T_STRING) {
          if (!utf8_ok(s, n)) FAIL("invalid UTF-8 in a string field");
          if (role == R_NONE) {
          } else if ((role == R_RES_KV || role == R_SPAN_KV) && num == 1) {
            w->key = s;
            w->key_len = n;
          } else if (role == R_SPAN && num == 5) {
            w->name_off = (uint32_t)(s - buf0);
            w->name_len = n;
          } else if ((role == R_RES_AV || role == R_SPAN_AV) && num == 1) {
            w->av.kind = AV_STR;
            w->av.off = (uint32_t)(s - buf0);
            w->av.len = n;
          }
        } else if (t == SW_T_BYTES) {
          if ((role == R_RES_AV || role == R_SPAN_AV) && num == 7) {
            w->av.kind = AV_BYTES;
            w->av.off = (uint32_t)(s - buf0);
            w->av.len = n;
          } else if (role == R_SPAN && num == 1) { /* trace_id: the last one counts, as in upb */
            w->tid_off = (uint32_t)(s - buf0);
            w->tid_len = n;
          } else if (role == R_SPAN && num == 2) { /* span_id */
            w->sid_off = (uint32_t)(s - buf0);
            w->sid_len = n;
          }
        } else if (fd && fd->repeated && (is_varint_type(t) || is_fixed64_type(t) || is_fixed32_type(t))) {
          /* packed repeated scalars: nothing here is read, but they must be well formed */
          if (is_fixed64_type(t) && n % 8) FAIL("packed fixed64 length not a multiple of 8");
          if (is_fixed32_type(t) && n % 4) FAIL("packed fixed32 length not a multiple of 4");
          if (is_varint_type(t)) {
            const uint8_t *e = s, *pe = s + n;
            while (e < pe) {
              uint64_t v;
              e = rd_varint(e, pe, &v);
              if (!e) FAIL("invalid varint in a packed field");
            }
          }
        }
        p = s + n;
        break;
      }
      case 3: /* start group: no field of this schema is a group, so it is unknown */
        p = q;
        PUSH(end, -1, num, R_NONE);
        continue;
      case 4: /* end group */
        if (msg >= 0 || group != num) FAIL("unexpected end of group");
        p = q;
        POP();
        continue;
      default:
        FAIL("invalid wire type");
    }
  }
  return 0;
fail:
  return -1;
#undef PUSH
#undef POP
}

#undef FAIL

/* ---- keys ------------------------------------------------------------------ */

static uint64_t hash_bytes(const uint8_t *s, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t k;
    memcpy(&k, s + i, 8);
    h ^= k * 0xff51afd7ed558ccdULL;
    h = (h << 31 | h >> 33) * 0xc4ceb9fe1a85ec53ULL;
  }
  uint64_t k = 0;
  for (size_t j = 0; i + j < n; j++) k |= (uint64_t)s[i + j] << (8 * j);
  h ^= k * 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

/* text (possibly cut to max code points) appended as u32 length + bytes; -2: reference path */
static int put_text(const sw_plan *pl, const uint8_t *body, const sw_val *v, buf *b, int cut,
                    const char *if_empty) {
  size_t at = b->len;
  if (buf_u32(b, 0)) return -1;
  int rc = val_text(pl, body, v, b);
  if (rc) return rc;
  size_t n = b->len - at - 4;
  if (cut) {
    n = cp_prefix(b->p + at + 4, n, pl->max_len);
    b->len = at + 4 + n;
  }
  if (!n && if_empty) {
    size_t k = strlen(if_empty);
    if (buf_put(b, if_empty, k)) return -1;
    n = k;
  }
  uint32_t n32 = (uint32_t)n;
  memcpy(b->p + at, &n32, 4);
  return 0;
}

static int build_keys(walk_t *w) {
  const sw_plan *pl = w->pl;
  sw_result *r = w->r;
  const uint8_t *body = w->body;
  uint32_t nd = pl->n_dims, ns = pl->n_slots;
  int rc = 0;
  /* resource texts, once per resource: service (cut, "unknown_service" if empty), then the dims */
  buf rt = {0};
  size_t *roff = calloc(w->n_res ? w->n_res : 1, sizeof(size_t));
  buf key = {0};
  size_t tcap = 64;
  int64_t *slots = NULL;
  uint64_t *hashes = NULL;
  size_t hcap = 0;
  if (!roff) return -1;
  for (size_t i = 0; i < w->n_res; i++) {
    res_t *re = &w->res[i];
    roff[i] = rt.len;
    if (re->complex) {
      r->fallback = 1;
      goto out;
    }
    sw_val none = {0};
    rc = put_text(pl, body, re->service_set ? &re->service : &none, &rt, 1, "unknown_service");
    if (rc) goto out;
    for (uint32_t d = 0; d < nd; d++) {
      size_t k = i * nd + d;
      uint8_t present = w->res_dims_set[k];
      if (buf_put(&rt, &present, 1)) { rc = -1; goto out; }
      if (present && (rc = put_text(pl, body, &w->res_dims[k], &rt, 1, NULL))) goto out;
    }
  }
  /* the hash table of keys: slots hold key indices, -1 empty */
  slots = malloc(tcap * sizeof(int64_t));
  if (!slots) { rc = -1; goto out; }
  for (size_t i = 0; i < tcap; i++) slots[i] = -1;
  for (size_t s = 0; s < w->n_acc; s++) {
    acc_t *a = &w->acc[s];
    key.len = 0;
    /* service */
    const uint8_t *rp = rt.p + roff[a->res];
    uint32_t slen;
    memcpy(&slen, rp, 4);
    if (buf_put(&key, rp, 4 + (size_t)slen)) { rc = -1; break; }
    rp += 4 + slen;
    /* name, kind, status */
    if (buf_u32(&key, a->name_len) || buf_put(&key, body + a->name_off, a->name_len) ||
        buf_put(&key, &a->kind, 4) || buf_put(&key, &a->status, 4)) { rc = -1; break; }
    /* slots; a missing dimension takes the resource's value */
    const uint8_t *dp = rp;
    for (uint32_t k = 0; k < ns; k++) {
      uint8_t present = w->acc_set[a->vals + k];
      if (present) {
        if (buf_put(&key, &present, 1)) { rc = -1; break; }
        if ((rc = put_text(pl, body, &w->acc_vals[a->vals + k], &key, 0, NULL))) break;
      } else if (k >= 3) {
        /* dims of this resource are in order after the service: walk to dimension k-3 */
        const uint8_t *x = dp;
        for (uint32_t d = 0; d < k - 3; d++) {
          uint8_t pr = *x++;
          if (pr) { uint32_t l; memcpy(&l, x, 4); x += 4 + l; }
        }
        uint8_t pr = *x++;
        if (buf_put(&key, &pr, 1)) { rc = -1; break; }
        if (pr) {
          uint32_t l;
          memcpy(&l, x, 4);
          if (buf_put(&key, x, 4 + (size_t)l)) { rc = -1; break; }
        }
      } else {
        if (buf_put(&key, &present, 1)) { rc = -1; break; }
      }
    }
    if (rc) break;
    /* look the key up */
    uint64_t h = hash_bytes(key.p, key.len);
    size_t mask = tcap - 1, pos = h & mask;
    int64_t found = -1;
    while (slots[pos] >= 0) {
      size_t ki = (size_t)slots[pos];
      if (hashes[ki] == h && r->koff[ki + 1] - r->koff[ki] == key.len &&
          memcmp(r->keys + r->koff[ki], key.p, key.len) == 0) {
        found = (int64_t)ki;
        break;
      }
      pos = (pos + 1) & mask;
    }
    if (found < 0) {
      size_t ki = r->n_keys;
      if (grow((void **)&hashes, &hcap, ki + 1, sizeof(uint64_t)) ||
          grow((void **)&r->koff, &r->koff_cap, ki + 2, sizeof(size_t))) { rc = -1; break; }
      buf kb = {r->keys, r->keys_len, r->keys_cap};
      if (buf_put(&kb, key.p, key.len)) { rc = -1; break; }
      r->keys = kb.p;
      r->keys_len = kb.len;
      r->keys_cap = kb.cap;
      if (ki == 0) r->koff[0] = 0;
      r->koff[ki + 1] = r->keys_len;
      hashes[ki] = h;
      r->n_keys = ki + 1;
      slots[pos] = (int64_t)ki;
      found = (int64_t)ki;
      if (2 * r->n_keys > tcap) { /* rehash */
        size_t ncap = tcap * 4;
        int64_t *ns2 = malloc(ncap * sizeof(int64_t));
        if (!ns2) { rc = -1; break; }
        for (size_t i = 0; i < ncap; i++) ns2[i] = -1;
        for (size_t i = 0; i < r->n_keys; i++) {
          size_t q = hashes[i] & (ncap - 1);
          while (ns2[q] >= 0) q = (q + 1) & (ncap - 1);
          ns2[q] = (int64_t)i;
        }
        free(slots);
        slots = ns2;
        tcap = ncap;
      }
    }
    r->which[s] = found;
    r->ends[s] = (int64_t)a->end;
    r->durs[s] = (double)a->dur * 1e-9;
  }
out:
  if (rc == -2) { r->fallback = 1; rc = 0; }
  if (rc == 0) {
    r->khash = hashes;  /* the binding finds the plan-wide key ids with them */
    hashes = NULL;
  }
  free(hashes);
  free(slots);
  free(key.p);
  free(rt.p);
  free(roff);
  return rc;
}

/* ---- bucketing ------------------------------------------------------------------ */

#include <math.h>

int sw_time_filter(const sw_result *r, int64_t too_old_before, int64_t future_after, uint8_t *ok,
                   uint64_t *too_old, uint64_t *future, int64_t *used, size_t *n_used) {
  uint8_t *seen = calloc(r->n_keys ? r->n_keys : 1, 1);
  if (!seen) return -1;
  uint64_t o = 0, f = 0;
  for (size_t i = 0; i < r->n; i++) {
    int64_t e = r->ends[i];
    int old = e < too_old_before, fut = e > future_after;
    o += old;
    f += fut;
    ok[i] = !(old | fut);
    if (ok[i]) seen[r->which[i]] = 1;
  }
  size_t k = 0;
  for (size_t i = 0; i < r->n_keys; i++)
    if (seen[i]) used[k++] = (int64_t)i;
  free(seen);
  *too_old = o;
  *future = f;
  *n_used = k;
  return 0;
}

/* The HDR counts index of integer microseconds, as hdr.index_of_units. */
static int64_t hdr_index(int64_t us) {
  uint64_t v = (uint64_t)us | 255u;
  int bits = 64 - __builtin_clzll(v);
  int bucket = bits - 8;
  int64_t sub = us >> bucket;
  return (((int64_t)bucket + 1) << 7) + (sub - 128);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Sorts n pairs (k, v) by k >= 0 (distinct or not; stable): LSD radix, 11 bits a pass. */
static int sort_pairs(int64_t *pairs, size_t n) {
  if (n < 2) return 0;
  int64_t maxk = 0;
  for (size_t i = 0; i < n; i++) {
    if (pairs[2 * i] < 0) {
      qsort(pairs, n, 2 * sizeof(int64_t), cmp_i64);
      return 0;
    }
    if (pairs[2 * i] > maxk) maxk = pairs[2 * i];
  }
  int64_t *tmp = malloc(n * 2 * sizeof(int64_t));
  if (!tmp) return -1;
  int64_t *src = pairs, *dst = tmp;
  for (int shift = 0; shift < 64 && (maxk >> shift); shift += 11) {
    size_t cnt[2049] = {0};
    for (size_t i = 0; i < n; i++) cnt[((uint64_t)src[2 * i] >> shift & 2047) + 1]++;
    for (size_t b = 1; b < 2049; b++) cnt[b] += cnt[b - 1];
    for (size_t i = 0; i < n; i++) {
      size_t at = cnt[(uint64_t)src[2 * i] >> shift & 2047]++;
      dst[2 * at] = src[2 * i];
      dst[2 * at + 1] = src[2 * i + 1];
    }
    int64_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != pairs) memcpy(pairs, src, n * 2 * sizeof(int64_t));
  free(tmp);
  return 0;
}

void sw_reduced_free(sw_reduced *out) {
  for (size_t i = 0; i < out->n_slots; i++) {
    sw_slot *s = &out->slots[i];
    free(s->keys);
    free(s->counts);
    free(s->sid);
    free(s->sum);
    free(s->min);
    free(s->max);
    free(s->ex_keys);
    free(s->ex_val);
    free(s->ex_at);
    free(s->ex_ids);
  }
  free(out->slots);
  memset(out, 0, sizeof *out);
}

/* rint() for 0 <= x (round half to even, the default rounding mode), without a libm call. */
static double rint_pos(double x) {
  const double two52 = 4503599627370496.0;
  return x < two52 ? (x + two52) - two52 : x;
}

/* Sorts int64 values >= 0: LSD radix, 11 bits a pass. */
static int sort_i64(int64_t *v, size_t n) {
  if (n < 2) return 0;
  int64_t maxk = 0;
  for (size_t i = 0; i < n; i++) maxk |= v[i];
  int64_t *tmp = malloc(n * sizeof(int64_t));
  if (!tmp) return -1;
  int64_t *src = v, *dst = tmp;
  for (int shift = 0; shift < 64 && (maxk >> shift); shift += 11) {
    size_t cnt[2049] = {0};
    for (size_t i = 0; i < n; i++) cnt[((uint64_t)src[i] >> shift & 2047) + 1]++;
    for (size_t b = 1; b < 2049; b++) cnt[b] += cnt[b - 1];
    for (size_t i = 0; i < n; i++) dst[cnt[(uint64_t)src[i] >> shift & 2047]++] = src[i];
    int64_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != v) memcpy(v, src, n * sizeof(int64_t));
  free(tmp);
  return 0;
}

/* Whether an accepted span's ids make an exemplar (sw_parse zeroed the others). */
static inline int ids_usable(const uint8_t *ids) {
  uint64_t a, b;
  memcpy(&a, ids, 8);
  memcpy(&b, ids + 8, 8);
  return (a | b) != 0;
}

int sw_reduce(const sw_result *r, const uint8_t *ok, const int64_t *locals, int64_t slot_ns, int64_t counts_len,
              int64_t highest_us, int exemplars, sw_reduced *out) {
  memset(out, 0, sizeof *out);
  if (slot_ns <= 0 || counts_len <= 0) return -1;
  if (exemplars && (counts_len % 128 || counts_len > (256 << 7) || !r->ids)) exemplars = 0; /* octaves fit a byte */
  const int64_t n_grp = counts_len >> 7; /* octaves: HDR index >> 7 */
  size_t n = r->n, nk = r->n_keys;
  int64_t *start = malloc((n ? n : 1) * sizeof(int64_t));
  int64_t *key = malloc((n ? n : 1) * sizeof(int64_t));
  int64_t *buf = malloc((n ? n : 1) * sizeof(int64_t));
  int64_t *pos_by_key = malloc((nk ? nk : 1) * sizeof(int64_t));
  uint8_t *grp = exemplars ? malloc(n ? n : 1) : NULL;
  int64_t *starts = NULL;
  size_t n_starts = 0, cap_starts = 0;
  int rc = -1;
  if (!start || !key || !buf || !pos_by_key || (exemplars && !grp)) goto done;
  for (size_t k = 0; k < nk; k++)
    if (locals[k] > INT64_MAX / counts_len - 1) goto done;
  /* per span: its slot and its (series, bucket) key; the distinct slots */
  int64_t last_lo = 1, last_hi = 0; /* the slot of the previous span: [lo, hi) */
  for (size_t i = 0; i < n; i++) {
    if (!ok[i]) continue;
    int64_t e = r->ends[i]; /* >= 0 */
    if (e >= last_lo && e < last_hi) {
      start[i] = last_lo;
    } else {
      start[i] = (e / slot_ns) * slot_ns;
      last_lo = start[i];
      last_hi = start[i] > INT64_MAX - slot_ns ? INT64_MAX : start[i] + slot_ns;
      size_t j = 0;
      while (j < n_starts && starts[j] != start[i]) j++;
      if (j == n_starts) {
        if (grow((void **)&starts, &cap_starts, n_starts + 1, sizeof(int64_t))) goto done;
        starts[n_starts++] = start[i];
      }
    }
    double us_f = rint_pos(r->durs[i] * 1e6); /* durations are >= 0 */
    int64_t us;
    if (!(us_f <= (double)highest_us)) {
      us = highest_us;
      out->clamped++;
    } else {
      us = (int64_t)us_f;
    }
    int64_t local = locals[r->which[i]];
    if (local < 0) goto done; /* a used key without a series: the caller's mistake */
    int64_t idx = hdr_index(us);
    if (idx >= counts_len) goto done;      /* highest_us past the layout's counts: the caller's mistake */
    key[i] = local * counts_len + idx;
    if (grp) grp[i] = (uint8_t)(idx >> 7); /* idx < counts_len: the octave is below n_grp */
    out->accepted++;
  }
  if (n_starts > 1) qsort(starts, n_starts, sizeof(int64_t), cmp_i64);
  out->slots = calloc(n_starts ? n_starts : 1, sizeof(sw_slot));
  if (!out->slots) goto done;
  out->n_slots = n_starts;
  for (size_t si = 0; si < n_starts; si++) {
    sw_slot *sl = &out->slots[si];
    sl->start = starts[si];
    /* (series, bucket) keys of this slot, sorted, then counted */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (ok[i] && start[i] == sl->start) buf[m++] = key[i];
    if (sort_i64(buf, m)) goto done;
    size_t u = 0;
    for (size_t i = 0; i < m; i++) u += i == 0 || buf[i] != buf[i - 1];
    sl->keys = malloc((u ? u : 1) * sizeof(int64_t));
    sl->counts = malloc((u ? u : 1) * sizeof(int64_t));
    if (!sl->keys || !sl->counts) goto done;
    size_t q = 0;
    for (size_t i = 0; i < m; i++) {
      if (i == 0 || buf[i] != buf[i - 1]) {
        sl->keys[q] = buf[i];
        sl->counts[q++] = 0;
      }
      sl->counts[q - 1]++;
    }
    sl->n = u;
    /* per series: sum (in span order), min, max; keys sharing a series share its stats */
    for (size_t k = 0; k < nk; k++) pos_by_key[k] = -1;
    size_t ns = 0, scap = 16;
    int64_t *usid = malloc(scap * sizeof(int64_t));
    double *ssum = malloc(scap * sizeof(double)), *smin = malloc(scap * sizeof(double)),
           *smax = malloc(scap * sizeof(double));
    /* exemplars: the best span per (series position, octave), -1 for none */
    int64_t *best = exemplars ? malloc(scap * (size_t)n_grp * sizeof(int64_t)) : NULL;
    int64_t *order = NULL;
    int bad = !usid || !ssum || !smin || !smax || (exemplars && !best);
    for (size_t i = 0; i < n && !bad; i++) {
      if (!ok[i] || start[i] != sl->start) continue;
      int64_t kk = r->which[i];
      int64_t sp = pos_by_key[kk];
      if (sp < 0) {
        int64_t local = locals[kk];
        for (size_t j = 0; j < ns; j++)
          if (usid[j] == local) {
            sp = (int64_t)j;
            break;
          }
        if (sp < 0) {
          if (ns == scap) {
            scap *= 2;
            int64_t *a = realloc(usid, scap * sizeof(int64_t));
            if (a) usid = a;
            double *b1 = realloc(ssum, scap * sizeof(double));
            if (b1) ssum = b1;
            double *b2 = realloc(smin, scap * sizeof(double));
            if (b2) smin = b2;
            double *b3 = realloc(smax, scap * sizeof(double));
            if (b3) smax = b3;
            int ok4 = 1;
            if (exemplars) {
              int64_t *b4 = realloc(best, scap * (size_t)n_grp * sizeof(int64_t));
              if (b4) best = b4;
              ok4 = b4 != NULL;
            }
            if (!a || !b1 || !b2 || !b3 || !ok4) {
              bad = 1;
              break;
            }
          }
          usid[ns] = local;
          ssum[ns] = 0.0;
          smin[ns] = INFINITY;
          smax[ns] = -INFINITY;
          if (exemplars)
            for (int64_t g = 0; g < n_grp; g++) best[ns * (size_t)n_grp + (size_t)g] = -1;
          sp = (int64_t)ns++;
        }
        pos_by_key[kk] = sp;
      }
      double sec = r->durs[i];
      ssum[sp] += sec;
      if (sec < smin[sp]) smin[sp] = sec;
      if (sec > smax[sp]) smax[sp] = sec;
      if (exemplars && ids_usable(r->ids + i * SW_ID_BYTES)) {
        int64_t *b = &best[(size_t)sp * (size_t)n_grp + grp[i]];
        if (*b < 0 || sec > r->durs[*b]) *b = (int64_t)i; /* the first on a tie */
      }
    }
    if (!bad) {
      /* series ascending */
      order = malloc((ns ? ns : 1) * 2 * sizeof(int64_t));
      sl->sid = malloc((ns ? ns : 1) * sizeof(int64_t));
      sl->sum = malloc((ns ? ns : 1) * sizeof(double));
      sl->min = malloc((ns ? ns : 1) * sizeof(double));
      sl->max = malloc((ns ? ns : 1) * sizeof(double));
      bad = !order || !sl->sid || !sl->sum || !sl->min || !sl->max;
    }
    if (!bad) {
      for (size_t j = 0; j < ns; j++) {
        order[2 * j] = usid[j];
        order[2 * j + 1] = (int64_t)j;
      }
      bad = sort_pairs(order, ns) != 0;
    }
    if (!bad) {
      for (size_t j = 0; j < ns; j++) {
        size_t from = (size_t)order[2 * j + 1];
        sl->sid[j] = usid[from];
        sl->sum[j] = ssum[from];
        sl->min[j] = smin[from];
        sl->max[j] = smax[from];
      }
      sl->n_stats = ns;
    }
    if (!bad && exemplars) {
      /* series ascending, octaves ascending: keys ascending (usid[from] * n_grp + g) */
      size_t m_ex = 0;
      for (size_t j = 0; j < ns * (size_t)n_grp; j++) m_ex += best[j] >= 0;
      size_t cap_ex = m_ex ? m_ex : 1;
      sl->ex_keys = malloc(cap_ex * sizeof(int64_t));
      sl->ex_val = malloc(cap_ex * sizeof(double));
      sl->ex_at = malloc(cap_ex * sizeof(int64_t));
      sl->ex_ids = malloc(cap_ex * SW_ID_BYTES);
      bad = !sl->ex_keys || !sl->ex_val || !sl->ex_at || !sl->ex_ids;
      size_t q = 0;
      for (size_t j = 0; j < ns && !bad; j++) {
        size_t from = (size_t)order[2 * j + 1];
        for (int64_t g = 0; g < n_grp; g++) {
          int64_t b = best[from * (size_t)n_grp + (size_t)g];
          if (b < 0) continue;
          sl->ex_keys[q] = usid[from] * n_grp + g;
          sl->ex_val[q] = r->durs[b];
          sl->ex_at[q] = r->ends[b];
          memcpy(sl->ex_ids + q * SW_ID_BYTES, r->ids + (size_t)b * SW_ID_BYTES, SW_ID_BYTES);
          q++;
        }
      }
      sl->n_ex = q;
    }
    free(order), free(usid), free(ssum), free(smin), free(smax), free(best);
    if (bad) goto done;
  }
  rc = 0;
done:
  free(start);
  free(key);
  free(buf);
  free(pos_by_key);
  free(grp);
  free(starts);
  if (rc) sw_reduced_free(out);
  return rc;
}

/* ---- entry points ----------------------------------------------------------- */

void sw_result_init(sw_result *r) { memset(r, 0, sizeof *r); }

void sw_result_free(sw_result *r) {
  free(r->ids);
  free(r->which);
  free(r->ends);
  free(r->durs);
  free(r->keys);
  free(r->koff);
  free(r->ranges);
  free(r->khash);
  memset(r, 0, sizeof *r);
}

int sw_parse(const sw_plan *pl, const uint8_t *body, size_t len, sw_result *r) {
  walk_t w;
  memset(&w, 0, sizeof w);
  w.pl = pl;
  w.body = body;
  w.r = r;
  int rc = -1;
  if (len > UINT32_MAX) {
    r->error = "body larger than 4 GiB";
    return -1;
  }
  uint32_t ns = pl->n_slots ? pl->n_slots : 1;
  w.vals = calloc(ns, sizeof(sw_val));
  w.vals_set = calloc(ns, 1);
  if (!w.vals || !w.vals_set) {
    r->oom = 1;
    goto done;
  }
  if (walk(&w, body, len)) goto done;
  if (!r->fallback && w.n_acc) {
    r->which = malloc(w.n_acc * sizeof(int64_t));
    r->ends = malloc(w.n_acc * sizeof(int64_t));
    r->durs = malloc(w.n_acc * sizeof(double));
    if (!r->which || !r->ends || !r->durs) {
      r->oom = 1;
      goto done;
    }
    if (build_keys(&w)) {
      r->oom = 1;
      goto done;
    }
    if (!r->fallback) {
      r->ids = malloc(w.n_acc * SW_ID_BYTES);
      if (!r->ids) {
        r->oom = 1;
        goto done;
      }
      for (size_t i = 0; i < w.n_acc; i++) span_ids(&w.acc[i], body, r->ids + i * SW_ID_BYTES);
      r->n = w.n_acc;
    }
  } else if (!r->fallback) {
    /* no accepted span; resources still decide whether the reference is needed */
    for (size_t i = 0; i < w.n_res; i++)
      if (w.res[i].complex) r->fallback = 1;
  }
  rc = 0;
done:
  free(w.vals);
  free(w.vals_set);
  free(w.res);
  free(w.res_dims);
  free(w.res_dims_set);
  free(w.acc);
  free(w.acc_vals);
  free(w.acc_set);
  return rc;
}

int sw_plan_check(const sw_plan *pl, const char **why) {
  struct { int msg, num, type, sub, rep; } need[] = {
      {M_REQ, 1, SW_T_MESSAGE, M_RS, 1},     {M_RS, 1, SW_T_MESSAGE, M_RES, 0},
      {M_RS, 2, SW_T_MESSAGE, M_SS, 1},      {M_RES, 1, SW_T_MESSAGE, M_KV, 1},
      {M_KV, 1, SW_T_STRING, -1, 0},         {M_KV, 2, SW_T_MESSAGE, M_AV, 0},
      {M_AV, 1, SW_T_STRING, -1, 0},         {M_AV, 2, SW_T_BOOL, -1, 0},
      {M_AV, 3, SW_T_INT64, -1, 0},          {M_AV, 4, SW_T_DOUBLE, -1, 0},
      {M_AV, 5, SW_T_MESSAGE, -2, 0},        {M_AV, 6, SW_T_MESSAGE, -2, 0},
      {M_AV, 7, SW_T_BYTES, -1, 0},          {M_SS, 2, SW_T_MESSAGE, M_SPAN, 1},
      {M_SPAN, 1, SW_T_BYTES, -1, 0},        {M_SPAN, 2, SW_T_BYTES, -1, 0},
      {M_SPAN, 5, SW_T_STRING, -1, 0},       {M_SPAN, 6, SW_T_ENUM, -1, 0},
      {M_SPAN, 7, SW_T_FIXED64, -1, 0},      {M_SPAN, 8, SW_T_FIXED64, -1, 0},
      {M_SPAN, 9, SW_T_MESSAGE, M_KV, 1},    {M_SPAN, 15, SW_T_MESSAGE, M_STATUS, 0},
      {M_STATUS, 3, SW_T_ENUM, -1, 0},
  };
  if (pl->n_msgs <= M_STATUS) {
    *why = "schema has too few messages";
    return -1;
  }
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
    const sw_msg *m = &pl->msgs[need[i].msg];
    if ((uint32_t)need[i].num >= m->n) goto bad;
    const sw_field *f = &m->fields[need[i].num];
    if (f->type != need[i].type || f->repeated != need[i].rep) goto bad;
    if (need[i].sub >= 0 && f->sub != need[i].sub) goto bad;
  }
  for (uint32_t i = 0; i < pl->n_msgs; i++)
    for (uint32_t j = 0; j < pl->msgs[i].n; j++) {
      const sw_field *f = &pl->msgs[i].fields[j];
      if (f->type == SW_T_GROUP) {
        *why = "schema has a group field";
        return -1;
      }
      if (f->type == SW_T_MESSAGE && (f->sub < 0 || (uint32_t)f->sub >= pl->n_msgs)) {
        *why = "schema refers to an unknown message";
        return -1;
      }
    }
  if (pl->n_slots < 3 || pl->n_dims != pl->n_slots - 3) {
    *why = "bad slot count";
    return -1;
  }
  for (uint32_t i = 0; i < pl->n_wanted; i++)
    if (pl->wanted[i].slot < 0 || (uint32_t)pl->wanted[i].slot >= pl->n_slots) {
      *why = "bad wanted slot";
      return -1;
    }
  for (uint32_t i = 0; i < pl->n_res_dims; i++)
    if (pl->res_dims[i].slot < 0 || (uint32_t)pl->res_dims[i].slot >= pl->n_dims) {
      *why = "bad resource dimension";
      return -1;
    }
  return 0;
bad:
  *why = "the installed opentelemetry-proto's trace messages differ from what the walker reads";
  return -1;
}
