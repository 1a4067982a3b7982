/* spanwire: OTLP ExportTraceServiceRequest (protobuf wire format) -> the span
 * batch the aggregator takes, without building objects per span.
 *
 * Pure C (no Python API), so that the libFuzzer/atheris harnesses and the
 * Python binding (module.c) share it. The walker is iterative with an explicit,
 * bounded stack; every read is checked against the end of the enclosing
 * message. It validates the whole body as protobuf's upb decoder does (same
 * accept/reject decisions: UTF-8 in string fields, varint and tag lengths,
 * groups, the nesting limit of 100), reads only the fields the span metrics
 * need, and skips the rest.
 *
 * The semantics of extraction mirror collector/receiver/spans.py, the
 * reference; tests/receiver/test_fast_spans.py checks the two agree.
 */
#ifndef SPANWIRE_H
#define SPANWIRE_H

#include <stddef.h>
#include <stdint.h>

#define SW_MAX_DEPTH 100 /* upb's default: nested messages + groups below the top */
#define SW_ID_BYTES 24   /* an exemplar's ids: the 16-byte trace id, the 8-byte span id */

/* Field types, as google.protobuf.FieldDescriptor.TYPE_* */
enum {
  SW_T_DOUBLE = 1, SW_T_FLOAT = 2, SW_T_INT64 = 3, SW_T_UINT64 = 4, SW_T_INT32 = 5,
  SW_T_FIXED64 = 6, SW_T_FIXED32 = 7, SW_T_BOOL = 8, SW_T_STRING = 9, SW_T_GROUP = 10,
  SW_T_MESSAGE = 11, SW_T_BYTES = 12, SW_T_UINT32 = 13, SW_T_ENUM = 14, SW_T_SFIXED32 = 15,
  SW_T_SFIXED64 = 16, SW_T_SINT32 = 17, SW_T_SINT64 = 18
};

typedef struct {
  uint8_t type;     /* 0: not a field of this message */
  uint8_t repeated;
  int32_t sub;      /* message index for SW_T_MESSAGE */
} sw_field;

typedef struct {
  uint32_t n;       /* fields[0..n): indexed by field number */
  sw_field *fields;
} sw_msg;

/* An AnyValue as the last of its oneof members set it. */
enum { AV_NONE = 0, AV_STR, AV_BOOL, AV_INT, AV_DOUBLE, AV_ARRAY, AV_KVLIST, AV_BYTES, AV_STRIDX };

typedef struct {
  uint8_t kind;
  uint32_t off, len; /* AV_STR, AV_BYTES: bytes in the body */
  int64_t i;         /* AV_BOOL, AV_INT */
  double d;          /* AV_DOUBLE */
} sw_val;

/* repr(float) as Python writes it; returns the length written or -1. */
typedef int (*sw_fmt_double)(void *ctx, double d, char *out, int cap);

typedef struct {
  const uint8_t *key;
  uint32_t key_len;
  int32_t slot;
  uint8_t primary;
} sw_wanted;

typedef struct {
  /* schema (from the installed descriptors); message 0 is the request */
  uint32_t n_msgs;
  sw_msg *msgs;
  /* span attributes that become labels: key -> slot (primary or an old-convention key) */
  uint32_t n_wanted;
  sw_wanted *wanted;
  uint32_t n_slots;        /* 3 + number of dimensions */
  uint32_t n_dims;
  /* resource attributes used for dimensions: key -> dimension index */
  uint32_t n_res_dims;
  sw_wanted *res_dims;     /* slot = dimension index */
  uint64_t max_len;        /* max_attribute_length, in code points */
  sw_fmt_double fmt_double;
  void *fmt_ctx;
} sw_plan;

typedef struct {
  uint32_t res, off, len;  /* one `resource` field of resource_spans[res] */
} sw_range;

typedef struct {
  /* error */
  const char *error;       /* static text; NULL when the body decoded */
  size_t error_at;         /* byte offset */
  int oom;
  /* counts */
  uint64_t received;       /* every span of the request */
  uint64_t bad_time, bad_order, too_long, future;
  int fallback;            /* a label value needs the reference path (array/kvlist, or a formatting failure) */
  /* accepted spans */
  size_t n, cap;
  int64_t *which, *ends;
  double *durs;
  uint8_t *ids;            /* SW_ID_BYTES per accepted span: trace id then span id, for exemplars;
                              all zero when the span has no usable ids (see sw_ids_usable) */
  /* distinct keys, encoded (see spanwire.c: key layout); key i is keys[koff[i]..koff[i+1]) */
  size_t n_keys;
  uint8_t *keys;
  size_t keys_len, keys_cap;
  size_t *koff;
  size_t koff_cap;
  uint64_t *khash;         /* hash of each key */
  /* resources: how many resource_spans, and where their `resource` fields are */
  uint32_t n_res;
  sw_range *ranges;
  size_t n_ranges, ranges_cap;
} sw_result;

void sw_result_init(sw_result *r);
void sw_result_free(sw_result *r);

/* Returns 0 when the body decoded (results in r), -1 otherwise (r->error, or r->oom). */
int sw_parse(const sw_plan *plan, const uint8_t *buf, size_t len, sw_result *r);

/* The layout of one encoded key, for the binding:
 *   u32 service_len, service, u32 name_len, name, i32 kind, i32 status,
 *   n_slots x (u8 present, [u32 len, text]) */

/* ---- bucketing: the aggregator's record_durations for an accepted batch ----
 * HDR layout of collector/aggregate/hdr.py: integer microseconds, 2 significant
 * digits (sub-bucket half magnitude 7), values clamped to [0, highest_us]. */
typedef struct {
  int64_t start;            /* slot start, ns */
  size_t n;                 /* (series, bucket) pairs */
  int64_t *keys, *counts;   /* keys = local * counts_len + index, ascending */
  size_t n_stats;           /* series */
  int64_t *sid;             /* local series ids, ascending */
  double *sum, *min, *max;  /* seconds; sums in the order the spans came */
  /* exemplars (when asked for): per series and octave of the HDR layout (index >> 7), the
   * longest span with usable ids, the first in request order on a tie; as
   * collector/aggregate/exemplars.py keeps them */
  size_t n_ex;
  int64_t *ex_keys;         /* local * (counts_len >> 7) + octave, ascending */
  double *ex_val;           /* seconds */
  int64_t *ex_at;           /* end time, ns */
  uint8_t *ex_ids;          /* SW_ID_BYTES each */
} sw_slot;

typedef struct {
  uint64_t clamped, accepted;
  size_t n_slots;
  sw_slot *slots;           /* ascending start */
} sw_reduced;

/* Marks the spans whose end is within [too_old_before, future_after] (ok, a
 * byte per span), counts the others, and lists the keys still used. */
int sw_time_filter(const sw_result *r, int64_t too_old_before, int64_t future_after, uint8_t *ok,
                   uint64_t *too_old, uint64_t *future, int64_t *used, size_t *n_used);

/* Buckets the ok spans by slot and series (locals[key], -1 for unused keys); with
 * `exemplars`, also picks each slot's exemplars (counts_len must be a multiple of 128). */
int sw_reduce(const sw_result *r, const uint8_t *ok, const int64_t *locals, int64_t slot_ns, int64_t counts_len,
              int64_t highest_us, int exemplars, sw_reduced *out);
void sw_reduced_free(sw_reduced *out);

/* Checks the schema once: -1 with a reason when the walker cannot use it. */
int sw_plan_check(const sw_plan *plan, const char **why);

#endif
