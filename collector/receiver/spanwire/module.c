/* Python binding of spanwire: collector.receiver._spanwire.
 *
 *   Plan(schema, wanted, res_dims, n_dims, max_len)   built once per extractor
 *   Plan.parse(body) -> Batch                          or raises DecodeError
 *
 * A Batch holds, for one request, the counts, the distinct series keys as
 * tuples equal to the reference's (service, name, kind, status, *values), and
 * per accepted span its key index, end time and duration as packed int64 /
 * int64 / float64 bytes (np.frombuffer). See collector/receiver/fastspans.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "spanwire.h"

static PyObject *DecodeError;

/* ---- Plan ------------------------------------------------------------------- */

#define MAX_KNOWN 100000 /* plan-wide keys remembered; past it the table starts again */
#define MAX_KNOWN_BYTES ((size_t)16 << 20) /* ... and past this many bytes of keys (long label values) */

typedef struct {
  PyObject_HEAD
  sw_plan plan;
  PyObject *keep; /* the key bytes the plan points into */
  /* series keys seen so far, plan-wide: encoded key -> id; known[id] is its tuple */
  uint8_t *kb;
  size_t kb_len, kb_cap;
  size_t *koff, koff_cap;
  uint64_t *kh;
  size_t kh_cap;
  int64_t *tab;
  size_t tab_cap, n_known;
  PyObject *known;
  size_t max_known;
} PlanObject;

static PyObject *key_tuple(const uint8_t *p, uint32_t n_slots);

static int fmt_double(void *ctx, double d, char *out, int cap) {
  (void)ctx;
  char *s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
  if (!s) {
    PyErr_Clear();
    return -1;
  }
  size_t n = strlen(s);
  int rc = -1;
  if (n <= (size_t)cap) {
    memcpy(out, s, n);
    rc = (int)n;
  }
  PyMem_Free(s);
  return rc;
}

static void plan_free_arrays(sw_plan *p) {
  if (p->msgs) {
    for (uint32_t i = 0; i < p->n_msgs; i++) PyMem_Free(p->msgs[i].fields);
    PyMem_Free(p->msgs);
  }
  PyMem_Free(p->wanted);
  PyMem_Free(p->res_dims);
  memset(p, 0, sizeof *p);
}

static void known_reset(PlanObject *self) {
  PyMem_Free(self->kb);
  PyMem_Free(self->koff);
  PyMem_Free(self->kh);
  PyMem_Free(self->tab);
  self->kb = NULL;
  self->koff = NULL;
  self->kh = NULL;
  self->tab = NULL;
  self->kb_len = self->kb_cap = self->koff_cap = self->kh_cap = self->tab_cap = self->n_known = 0;
  Py_CLEAR(self->known);
}

static int pgrow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = PyMem_Realloc(*p, c * elem);
  if (!q) return -1;
  *p = q;
  *cap = c;
  return 0;
}

static int64_t known_find(PlanObject *self, const uint8_t *k, size_t klen, uint64_t h) {
  if (!self->tab_cap) return -1;
  size_t mask = self->tab_cap - 1, q = h & mask;
  while (self->tab[q] >= 0) {
    size_t j = (size_t)self->tab[q];
    if (self->kh[j] == h && self->koff[j + 1] - self->koff[j] == klen && memcmp(self->kb + self->koff[j], k, klen) == 0)
      return (int64_t)j;
    q = (q + 1) & mask;
  }
  return -1;
}

/* Adds a key and its tuple (no Python code runs in here); returns its id or -1. */
static int64_t known_add(PlanObject *self, const uint8_t *k, size_t klen, uint64_t h, PyObject *t) {
  size_t j = self->n_known;
  if (2 * (j + 1) > self->tab_cap) { /* grow and rehash */
    size_t cap = self->tab_cap ? self->tab_cap * 2 : 256;
    int64_t *tab = PyMem_Malloc(cap * sizeof(int64_t));
    if (!tab) return -1;
    for (size_t i = 0; i < cap; i++) tab[i] = -1;
    for (size_t i = 0; i < j; i++) {
      size_t q = self->kh[i] & (cap - 1);
      while (tab[q] >= 0) q = (q + 1) & (cap - 1);
      tab[q] = (int64_t)i;
    }
    PyMem_Free(self->tab);
    self->tab = tab;
    self->tab_cap = cap;
  }
  if (pgrow((void **)&self->kb, &self->kb_cap, self->kb_len + klen, 1) ||
      pgrow((void **)&self->koff, &self->koff_cap, j + 2, sizeof(size_t)) ||
      pgrow((void **)&self->kh, &self->kh_cap, j + 1, sizeof(uint64_t)) || PyList_Append(self->known, t))
    return -1;
  memcpy(self->kb + self->kb_len, k, klen);
  if (j == 0) self->koff[0] = 0;
  self->kb_len += klen;
  self->koff[j + 1] = self->kb_len;
  self->kh[j] = h;
  size_t q = h & (self->tab_cap - 1);
  while (self->tab[q] >= 0) q = (q + 1) & (self->tab_cap - 1);
  self->tab[q] = (int64_t)j;
  self->n_known = j + 1;
  return (int64_t)j;
}

/* The plan-wide id of each of the batch's keys, adding new ones (and their tuples).
 * Building a tuple may run the garbage collector, and so other threads: the table
 * is only touched between such points, and the ids are taken again if another
 * thread made the plan start its table again meanwhile. */
static int known_ids(PlanObject *self, const sw_result *r, int64_t *ids) {
  for (int attempt = 0; attempt < 8; attempt++) {
    if (!self->known || self->n_known + r->n_keys > self->max_known ||
        self->kb_len + r->keys_len > MAX_KNOWN_BYTES) {
      known_reset(self);
      self->known = PyList_New(0);
      if (!self->known) return -1;
    }
    PyObject *gen = Py_NewRef(self->known);
    int again = 0;
    for (size_t i = 0; i < r->n_keys && !again; i++) {
      const uint8_t *k = r->keys + r->koff[i];
      size_t klen = r->koff[i + 1] - r->koff[i];
      uint64_t h = r->khash[i];
      int64_t id = known_find(self, k, klen, h);
      if (id < 0) {
        PyObject *t = key_tuple(k, self->plan.n_slots);
        if (!t) {
          Py_DECREF(gen);
          return -1;
        }
        if (self->known != gen) {
          again = 1;
        } else {
          id = known_find(self, k, klen, h);
          if (id < 0) id = known_add(self, k, klen, h, t);
        }
        Py_DECREF(t);
        if (id < 0 && !again) {
          Py_DECREF(gen);
          PyErr_NoMemory();
          return -1;
        }
      }
      ids[i] = id;
    }
    if (self->known == gen) again = 0;
    else again = 1;
    Py_DECREF(gen);
    if (!again) return 0;
  }
  PyErr_SetString(PyExc_RuntimeError, "series key table kept changing under this request");
  return -1;
}

static void Plan_dealloc(PlanObject *self) {
  plan_free_arrays(&self->plan);
  known_reset(self);
  Py_XDECREF(self->keep);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* [(key: bytes, slot: int, primary: bool)] -> sw_wanted[] (keys kept alive in `keep`) */
static int read_wanted(PyObject *seq, sw_wanted **out, uint32_t *n, PyObject *keep) {
  PyObject *fast = PySequence_Fast(seq, "wanted must be a sequence");
  if (!fast) return -1;
  Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
  *out = PyMem_Calloc(len ? (size_t)len : 1, sizeof(sw_wanted));
  if (!*out) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < len; i++) {
    PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
    PyObject *key;
    int slot, primary;
    if (!PyArg_ParseTuple(item, "Sip", &key, &slot, &primary)) {
      Py_DECREF(fast);
      return -1;
    }
    if (PyList_Append(keep, key)) {
      Py_DECREF(fast);
      return -1;
    }
    (*out)[i].key = (const uint8_t *)PyBytes_AS_STRING(key);
    (*out)[i].key_len = (uint32_t)PyBytes_GET_SIZE(key);
    (*out)[i].slot = slot;
    (*out)[i].primary = (uint8_t)primary;
  }
  *n = (uint32_t)len;
  Py_DECREF(fast);
  return 0;
}

static int Plan_init(PlanObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"schema", "wanted", "res_dims", "n_dims", "max_len", "max_known", NULL};
  PyObject *schema, *wanted, *res_dims;
  unsigned int n_dims;
  unsigned long long max_len, max_known = MAX_KNOWN;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOIK|K", kwlist, &schema, &wanted, &res_dims, &n_dims, &max_len,
                                   &max_known))
    return -1;
  self->max_known = (size_t)max_known;
  known_reset(self);
  plan_free_arrays(&self->plan);
  Py_CLEAR(self->keep);
  self->keep = PyList_New(0);
  if (!self->keep) return -1;
  sw_plan *p = &self->plan;
  /* schema: one bytes per message, int32 quadruples (number, type, sub, repeated) */
  PyObject *fast = PySequence_Fast(schema, "schema must be a sequence");
  if (!fast) return -1;
  Py_ssize_t nm = PySequence_Fast_GET_SIZE(fast);
  p->msgs = PyMem_Calloc(nm ? (size_t)nm : 1, sizeof(sw_msg));
  if (!p->msgs) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  p->n_msgs = (uint32_t)nm;
  for (Py_ssize_t i = 0; i < nm; i++) {
    PyObject *b = PySequence_Fast_GET_ITEM(fast, i);
    if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) % 16) {
      Py_DECREF(fast);
      PyErr_SetString(PyExc_ValueError, "schema entries must be bytes of int32 quadruples");
      return -1;
    }
    const int32_t *q = (const int32_t *)PyBytes_AS_STRING(b);
    Py_ssize_t nf = PyBytes_GET_SIZE(b) / 16;
    int32_t maxnum = 0;
    for (Py_ssize_t j = 0; j < nf; j++) {
      if (q[4 * j] <= 0 || q[4 * j] > 4096) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "field number out of the range the walker indexes");
        return -1;
      }
      if (q[4 * j] > maxnum) maxnum = q[4 * j];
    }
    p->msgs[i].n = (uint32_t)maxnum + 1;
    p->msgs[i].fields = PyMem_Calloc((size_t)maxnum + 1, sizeof(sw_field));
    if (!p->msgs[i].fields) {
      Py_DECREF(fast);
      PyErr_NoMemory();
      return -1;
    }
    for (Py_ssize_t j = 0; j < nf; j++) {
      sw_field *f = &p->msgs[i].fields[q[4 * j]];
      f->type = (uint8_t)q[4 * j + 1];
      f->sub = q[4 * j + 2];
      f->repeated = (uint8_t)(q[4 * j + 3] != 0);
    }
  }
  Py_DECREF(fast);
  if (read_wanted(wanted, &p->wanted, &p->n_wanted, self->keep)) return -1;
  if (read_wanted(res_dims, &p->res_dims, &p->n_res_dims, self->keep)) return -1;
  p->n_dims = n_dims;
  p->n_slots = 3 + n_dims;
  p->max_len = max_len;
  p->fmt_double = fmt_double;
  p->fmt_ctx = NULL;
  const char *why;
  if (sw_plan_check(p, &why)) {
    PyErr_SetString(PyExc_ValueError, why);
    return -1;
  }
  return 0;
}

/* ---- Batch ------------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  sw_result r;
  uint32_t n_slots;
  PyObject *body;  /* the request body, for resources() */
  PyObject *keys;  /* list of tuples, built on first access */
  uint8_t *ok;     /* time_filter's verdict per accepted span */
  PyObject *ids;   /* bytes: the plan-wide id of each key (int64) */
  PyObject *known; /* the plan's list of key tuples these ids index */
} BatchObject;

static PyTypeObject BatchType;

static void Batch_dealloc(BatchObject *self) {
  sw_result_free(&self->r);
  PyMem_Free(self->ok);
  Py_XDECREF(self->ids);
  Py_XDECREF(self->known);
  Py_XDECREF(self->body);
  Py_XDECREF(self->keys);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Plan_parse(PlanObject *self, PyObject *body) {
  Py_buffer view;
  if (PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)) return NULL;
  BatchObject *b = PyObject_New(BatchObject, &BatchType);
  if (!b) {
    PyBuffer_Release(&view);
    return NULL;
  }
  sw_result_init(&b->r);
  b->n_slots = self->plan.n_slots;
  b->keys = NULL;
  b->body = NULL;
  b->ok = NULL;
  b->ids = NULL;
  b->known = NULL;
  int rc = sw_parse(&self->plan, (const uint8_t *)view.buf, (size_t)view.len, &b->r);
  PyBuffer_Release(&view);
  if (rc) {
    if (b->r.oom) {
      PyErr_NoMemory();
    } else {
      PyErr_Format(DecodeError, "%s at byte %zu", b->r.error ? b->r.error : "malformed", b->r.error_at);
    }
    Py_DECREF(b);
    return NULL;
  }
  b->ids = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(b->r.n_keys * sizeof(int64_t)));
  if (!b->ids || (b->r.n_keys && known_ids(self, &b->r, (int64_t *)PyBytes_AS_STRING(b->ids)))) {
    Py_DECREF(b);
    return NULL;
  }
  b->known = Py_NewRef(self->known ? self->known : Py_None);
  Py_INCREF(body);
  b->body = body;
  return (PyObject *)b;
}

static PyObject *read_str(const uint8_t **pp) {
  uint32_t n;
  memcpy(&n, *pp, 4);
  PyObject *s = PyUnicode_DecodeUTF8((const char *)*pp + 4, n, "strict");
  *pp += 4 + n;
  return s;
}

static PyObject *key_tuple(const uint8_t *p, uint32_t n_slots) {
  PyObject *t = PyTuple_New(4 + n_slots);
  if (!t) return NULL;
  PyObject *svc = read_str(&p);
  if (!svc) goto fail;
  PyTuple_SET_ITEM(t, 0, svc);
  PyObject *name = read_str(&p);
  if (!name) goto fail;
  PyTuple_SET_ITEM(t, 1, name);
  int32_t kind, status;
  memcpy(&kind, p, 4);
  memcpy(&status, p + 4, 4);
  p += 8;
  PyObject *k = PyLong_FromLong(kind);
  if (!k) goto fail;
  PyTuple_SET_ITEM(t, 2, k);
  PyObject *st = PyLong_FromLong(status);
  if (!st) goto fail;
  PyTuple_SET_ITEM(t, 3, st);
  for (uint32_t j = 0; j < n_slots; j++) {
    uint8_t present = *p++;
    PyObject *v;
    if (present) {
      v = read_str(&p);
      if (!v) goto fail;
    } else {
      v = Py_NewRef(Py_None);
    }
    PyTuple_SET_ITEM(t, 4 + j, v);
  }
  return t;
fail:
  Py_DECREF(t);
  return NULL;
}

/* The batch's distinct keys as tuples equal to the reference's key tuples. */
static PyObject *Batch_keys(BatchObject *self, void *closure) {
  (void)closure;
  if (self->keys) return Py_NewRef(self->keys);
  size_t n = self->r.n_keys;
  PyObject *list = PyList_New((Py_ssize_t)n);
  if (!list) return NULL;
  const int64_t *ids = (const int64_t *)PyBytes_AS_STRING(self->ids);
  for (size_t i = 0; i < n; i++) {
    PyObject *t = PyList_GetItem(self->known, (Py_ssize_t)ids[i]);
    if (!t) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, Py_NewRef(t));
  }
  self->keys = list;
  return Py_NewRef(list);
}

static PyObject *Batch_ids(BatchObject *self, void *closure) {
  (void)closure;
  return Py_NewRef(self->ids);
}

static PyObject *Batch_known(BatchObject *self, void *closure) {
  (void)closure;
  return Py_NewRef(self->known);
}

static PyObject *Batch_array(BatchObject *self, void *closure) {
  const void *src = closure == (void *)0 ? (const void *)self->r.which
                    : closure == (void *)1 ? (const void *)self->r.ends
                                           : (const void *)self->r.durs;
  return PyBytes_FromStringAndSize(src ? (const char *)src : "", (Py_ssize_t)(self->r.n * 8));
}

static PyObject *Batch_resources(BatchObject *self, PyObject *unused) {
  (void)unused;
  Py_buffer view;
  if (PyObject_GetBuffer(self->body, &view, PyBUF_SIMPLE)) return NULL;
  PyObject *out = PyList_New(self->r.n_res);
  if (!out) goto done;
  for (uint32_t i = 0; i < self->r.n_res; i++) {
    size_t total = 0;
    for (size_t j = 0; j < self->r.n_ranges; j++)
      if (self->r.ranges[j].res == i) total += self->r.ranges[j].len;
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!b) {
      Py_CLEAR(out);
      goto done;
    }
    char *dst = PyBytes_AS_STRING(b);
    for (size_t j = 0; j < self->r.n_ranges; j++)
      if (self->r.ranges[j].res == i) {
        const sw_range *g = &self->r.ranges[j];
        if ((size_t)g->off + g->len <= (size_t)view.len) memcpy(dst, (const char *)view.buf + g->off, g->len);
        dst += g->len;
      }
    PyList_SET_ITEM(out, i, b);
  }
done:
  PyBuffer_Release(&view);
  return out;
}

static PyObject *Batch_time_filter(BatchObject *self, PyObject *args) {
  long long too_old_before, future_after;
  if (!PyArg_ParseTuple(args, "LL", &too_old_before, &future_after)) return NULL;
  sw_result *r = &self->r;
  PyMem_Free(self->ok);
  self->ok = PyMem_Malloc(r->n ? r->n : 1);
  int64_t *used = PyMem_Malloc((r->n_keys ? r->n_keys : 1) * sizeof(int64_t));
  if (!self->ok || !used) {
    PyMem_Free(used);
    return PyErr_NoMemory();
  }
  uint64_t old, fut;
  size_t n_used;
  if (sw_time_filter(r, too_old_before, future_after, self->ok, &old, &fut, used, &n_used)) {
    PyMem_Free(used);
    return PyErr_NoMemory();
  }
  PyObject *ub = PyBytes_FromStringAndSize((const char *)used, (Py_ssize_t)(n_used * sizeof(int64_t)));
  PyMem_Free(used);
  if (!ub) return NULL;
  return Py_BuildValue("KKN", (unsigned long long)old, (unsigned long long)fut, ub);
}

static PyObject *bytes_of(const void *p, size_t n) {
  return PyBytes_FromStringAndSize(n ? (const char *)p : "", (Py_ssize_t)n);
}

static PyObject *Batch_reduce(BatchObject *self, PyObject *args) {
  Py_buffer locals;
  long long slot_ns, counts_len, highest_us;
  int exemplars = 0;
  if (!PyArg_ParseTuple(args, "y*LLL|p", &locals, &slot_ns, &counts_len, &highest_us, &exemplars)) return NULL;
  if (!self->ok || (size_t)locals.len != self->r.n_keys * sizeof(int64_t) || slot_ns <= 0 || counts_len <= 0) {
    PyBuffer_Release(&locals);
    PyErr_SetString(PyExc_ValueError, "reduce needs time_filter first and one int64 local id per key");
    return NULL;
  }
  sw_reduced red;
  int rc = sw_reduce(&self->r, self->ok, (const int64_t *)locals.buf, slot_ns, counts_len, highest_us, exemplars,
                     &red);
  PyBuffer_Release(&locals);
  if (rc) {
    PyErr_SetString(PyExc_ValueError, "reduce failed (out of memory, or a used key without a series)");
    return NULL;
  }
  PyObject *slots = PyList_New((Py_ssize_t)red.n_slots);
  if (!slots) goto fail;
  for (size_t i = 0; i < red.n_slots; i++) {
    sw_slot *sl = &red.slots[i];
    PyObject *t;
    if (exemplars)
      t = Py_BuildValue("LNNNNNNNNNN", (long long)sl->start, bytes_of(sl->keys, sl->n * 8),
                        bytes_of(sl->counts, sl->n * 8), bytes_of(sl->sid, sl->n_stats * 8),
                        bytes_of(sl->sum, sl->n_stats * 8), bytes_of(sl->min, sl->n_stats * 8),
                        bytes_of(sl->max, sl->n_stats * 8), bytes_of(sl->ex_keys, sl->n_ex * 8),
                        bytes_of(sl->ex_val, sl->n_ex * 8), bytes_of(sl->ex_at, sl->n_ex * 8),
                        bytes_of(sl->ex_ids, sl->n_ex * SW_ID_BYTES));
    else
      t = Py_BuildValue("LNNNNNN", (long long)sl->start, bytes_of(sl->keys, sl->n * 8),
                        bytes_of(sl->counts, sl->n * 8), bytes_of(sl->sid, sl->n_stats * 8),
                        bytes_of(sl->sum, sl->n_stats * 8), bytes_of(sl->min, sl->n_stats * 8),
                        bytes_of(sl->max, sl->n_stats * 8));
    if (!t) goto fail;
    PyList_SET_ITEM(slots, (Py_ssize_t)i, t);
  }
  PyObject *out = Py_BuildValue("KKN", (unsigned long long)red.clamped, (unsigned long long)red.accepted, slots);
  sw_reduced_free(&red);
  return out;
fail:
  Py_XDECREF(slots);
  sw_reduced_free(&red);
  return NULL;
}

#define U64(field)                                                   \
  static PyObject *Batch_##field(BatchObject *self, void *closure) { \
    (void)closure;                                                   \
    return PyLong_FromUnsignedLongLong(self->r.field);               \
  }
U64(received)
U64(bad_time)
U64(bad_order)
U64(too_long)
U64(future)
U64(n)
U64(n_res)

static PyObject *Batch_fallback(BatchObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(self->r.fallback);
}

static PyGetSetDef Batch_getset[] = {
    {"received", (getter)Batch_received, NULL, "spans in the request", NULL},
    {"bad_time", (getter)Batch_bad_time, NULL, "rejected: missing start or end", NULL},
    {"bad_order", (getter)Batch_bad_order, NULL, "rejected: end before start", NULL},
    {"too_long", (getter)Batch_too_long, NULL, "rejected: a label value over the limit", NULL},
    {"future", (getter)Batch_future, NULL, "rejected: end past int64", NULL},
    {"n", (getter)Batch_n, NULL, "accepted spans", NULL},
    {"n_resources", (getter)Batch_n_res, NULL, "resource_spans in the request", NULL},
    {"fallback", (getter)Batch_fallback, NULL, "a label needs the reference path", NULL},
    {"keys", (getter)Batch_keys, NULL, "distinct series keys, as the reference's tuples", NULL},
    {"key_ids", (getter)Batch_ids, NULL, "plan-wide id of each key, int64 bytes (indexes known)", NULL},
    {"known", (getter)Batch_known, NULL, "the plan's key tuples by id (a new list when the plan starts again)",
     NULL},
    {"which", (getter)Batch_array, NULL, "int64 key index per accepted span", (void *)0},
    {"ends", (getter)Batch_array, NULL, "int64 end time (ns) per accepted span", (void *)1},
    {"durs", (getter)Batch_array, NULL, "float64 duration (s) per accepted span", (void *)2},
    {NULL}};

static PyMethodDef Batch_methods[] = {
    {"resources", (PyCFunction)Batch_resources, METH_NOARGS,
     "Each resource_spans' Resource, serialized (b'' when absent)."},
    {"time_filter", (PyCFunction)Batch_time_filter, METH_VARARGS,
     "time_filter(too_old_before_ns, future_after_ns) -> (too_old, in_future, used key indexes as int64 bytes)"},
    {"reduce", (PyCFunction)Batch_reduce, METH_VARARGS,
     "reduce(locals int64 bytes, slot_ns, counts_len, highest_us, exemplars=False) -> (clamped, accepted, "
     "[(start, keys, counts, sid, sum, min, max[, ex_keys, ex_values, ex_at, ex_ids])])"},
    {NULL}};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collector.receiver._spanwire.Batch",
    .tp_basicsize = sizeof(BatchObject),
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One decoded ExportTraceServiceRequest, reduced to what span metrics need.",
    .tp_getset = Batch_getset,
    .tp_methods = Batch_methods,
};

static PyMethodDef Plan_methods[] = {
    {"parse", (PyCFunction)Plan_parse, METH_O, "Decode one ExportTraceServiceRequest body into a Batch."},
    {NULL}};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collector.receiver._spanwire.Plan",
    .tp_basicsize = sizeof(PlanObject),
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What to read from trace requests: the schema, the wanted attributes, the limits.",
    .tp_methods = Plan_methods,
    .tp_init = (initproc)Plan_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_spanwire",
                                    "OTLP trace requests -> span metric batches, compiled.", -1, NULL};

PyMODINIT_FUNC PyInit__spanwire(void) {
  if (PyType_Ready(&PlanType) < 0 || PyType_Ready(&BatchType) < 0) return NULL;
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  DecodeError = PyErr_NewException("collector.receiver._spanwire.DecodeError", PyExc_ValueError, NULL);
  if (!DecodeError || PyModule_AddObjectRef(m, "DecodeError", DecodeError) < 0 ||
      PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0 ||
      PyModule_AddObjectRef(m, "Batch", (PyObject *)&BatchType) < 0 ||
      PyModule_AddIntConstant(m, "MAX_DEPTH", SW_MAX_DEPTH) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
