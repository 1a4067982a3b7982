/* libFuzzer harness for the C core of the compiled span path (memory safety;
 * the differential check against the reference is fuzz/fuzz_spans.py).
 *
 * Coverage-guided, with clang:
 *   .venv/bin/python fuzz/dump_schema.py > /tmp/schema.bin
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined fuzz/spanwire_fuzzer.c \
 *       collector/receiver/spanwire/spanwire.c -lm -o /tmp/spanwire_fuzzer
 *   SPANWIRE_SCHEMA=/tmp/schema.bin /tmp/spanwire_fuzzer -max_total_time=600 fuzz/corpus/spans
 * Corpus replay with gcc (no libFuzzer), as CI does:
 *   gcc -DREPLAY_MAIN -g -O1 -fsanitize=address,undefined fuzz/spanwire_fuzzer.c \
 *       collector/receiver/spanwire/spanwire.c -lm -o /tmp/spanwire_replay
 *   SPANWIRE_SCHEMA=/tmp/schema.bin /tmp/spanwire_replay fuzz/corpus/spans/[0-9a-f]*
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../collector/receiver/spanwire/spanwire.h"

static sw_plan plan;

static int fmt_double(void *ctx, double d, char *out, int cap) {
  (void)ctx;
  int n = snprintf(out, (size_t)cap, "%.17g", d);
  return n < cap ? n : -1;
}

static void die(const char *why) {
  fprintf(stderr, "spanwire_fuzzer: %s\n", why);
  abort();
}

static void load_schema(void) {
  const char *path = getenv("SPANWIRE_SCHEMA");
  FILE *f = fopen(path ? path : "fuzz/schema.bin", "rb");
  if (!f) die("cannot open the schema (SPANWIRE_SCHEMA, made by fuzz/dump_schema.py)");
  uint32_t n;
  if (fread(&n, 4, 1, f) != 1 || n == 0 || n > 1000) die("bad schema");
  plan.n_msgs = n;
  plan.msgs = calloc(n, sizeof(sw_msg));
  for (uint32_t i = 0; i < n; i++) {
    uint32_t len;
    if (fread(&len, 4, 1, f) != 1 || len % 16 || len > 1 << 20) die("bad schema");
    int32_t *q = malloc(len ? len : 1);
    if (len && fread(q, 1, len, f) != len) die("bad schema");
    int32_t maxnum = 0;
    for (uint32_t j = 0; j < len / 16; j++)
      if (q[4 * j] > maxnum) maxnum = q[4 * j];
    plan.msgs[i].n = (uint32_t)maxnum + 1;
    plan.msgs[i].fields = calloc((size_t)maxnum + 1, sizeof(sw_field));
    for (uint32_t j = 0; j < len / 16; j++) {
      sw_field *fd = &plan.msgs[i].fields[q[4 * j]];
      fd->type = (uint8_t)q[4 * j + 1];
      fd->sub = q[4 * j + 2];
      fd->repeated = (uint8_t)(q[4 * j + 3] != 0);
    }
    free(q);
  }
  fclose(f);
  static sw_wanted wanted[] = {
      {(const uint8_t *)"http.request.method", 19, 0, 1}, {(const uint8_t *)"http.method", 11, 0, 0},
      {(const uint8_t *)"http.route", 10, 1, 1},          {(const uint8_t *)"http.response.status_code", 25, 2, 1},
      {(const uint8_t *)"http.status_code", 16, 2, 0},    {(const uint8_t *)"deployment.environment", 22, 3, 1},
      {(const uint8_t *)"peer", 4, 4, 1}};
  static sw_wanted res_dims[] = {{(const uint8_t *)"deployment.environment", 22, 0, 1},
                                 {(const uint8_t *)"peer", 4, 1, 1}};
  plan.wanted = wanted;
  plan.n_wanted = sizeof wanted / sizeof wanted[0];
  plan.res_dims = res_dims;
  plan.n_res_dims = 2;
  plan.n_dims = 2;
  plan.n_slots = 5;
  plan.max_len = 12;
  plan.fmt_double = fmt_double;
  const char *why;
  if (sw_plan_check(&plan, &why)) die(why);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  load_schema();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sw_result r;
  sw_result_init(&r);
  if (sw_parse(&plan, data, size, &r) == 0 && !r.fallback) {
    if (r.n > r.received) die("more accepted spans than received");
    for (size_t i = 0; i < r.n; i++)
      if (r.which[i] < 0 || (size_t)r.which[i] >= r.n_keys) die("key index out of range");
    uint8_t *ok = malloc(r.n ? r.n : 1);
    int64_t *used = malloc((r.n_keys ? r.n_keys : 1) * sizeof(int64_t));
    int64_t *locals = malloc((r.n_keys ? r.n_keys : 1) * sizeof(int64_t));
    uint64_t old, fut;
    size_t n_used;
    if (sw_time_filter(&r, INT64_MIN / 2, INT64_MAX / 2, ok, &old, &fut, used, &n_used) == 0) {
      for (size_t i = 0; i < r.n_keys; i++) locals[i] = (int64_t)(i % 3); /* keys collide on a series */
      sw_reduced red;
      if (sw_reduce(&r, ok, locals, 10000000000LL, 3328, 3600000000LL, 1, &red) == 0) {
        if (red.accepted != r.n - old - fut) die("reduce lost or made up spans");
        for (size_t s = 0; s < red.n_slots; s++) {
          const sw_slot *sl = &red.slots[s];
          if (sl->n_ex > sl->n) die("more exemplars than (series, bucket) pairs");
          for (size_t e = 0; e < sl->n_ex; e++) {
            if (e && sl->ex_keys[e] <= sl->ex_keys[e - 1]) die("exemplar keys not ascending");
            if (sl->ex_keys[e] / 26 > 2) die("exemplar of an unknown series");
            uint8_t any = 0;
            for (int b = 0; b < 16; b++) any |= sl->ex_ids[e * SW_ID_BYTES + b];
            if (!any) die("exemplar without a trace id");
          }
        }
        sw_reduced_free(&red);
      }
    }
    free(ok);
    free(used);
    free(locals);
  }
  sw_result_free(&r);
  return 0;
}

#ifdef REPLAY_MAIN
int main(int argc, char **argv) {
  load_schema();
  int n = 0;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) continue;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    if (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) die("short read");
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len > 0 ? (size_t)len : 0);
    free(buf);
    n++;
  }
  printf("spanwire_replay: %d inputs, no memory errors\n", n);
  return 0;
}
#endif
