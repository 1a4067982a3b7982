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

typedef struct {
  PyObject_HEAD
  sw_plan plan;
  PyObject *keep; /* the key bytes the plan points into */
} PlanObject;

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

static void Plan_dealloc(PlanObject *self) {
  plan_free_arrays(&self->plan);
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
  static char *kwlist[] = {"schema", "wanted", "res_dims", "n_dims", "max_len", NULL};
  PyObject *schema, *wanted, *res_dims;
  unsigned int n_dims;
  unsigned long long max_len;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOIK", kwlist, &schema, &wanted, &res_dims, &n_dims, &max_len))
    return -1;
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
} BatchObject;

static PyTypeObject BatchType;

static void Batch_dealloc(BatchObject *self) {
  sw_result_free(&self->r);
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

static PyObject *Batch_keys(BatchObject *self, void *closure) {
  (void)closure;
  if (self->keys) return Py_NewRef(self->keys);
  sw_result *r = &self->r;
  PyObject *list = PyList_New((Py_ssize_t)r->n_keys);
  if (!list) return NULL;
  for (size_t i = 0; i < r->n_keys; i++) {
    const uint8_t *p = r->keys + r->koff[i];
    PyObject *t = PyTuple_New(4 + self->n_slots);
    if (!t) goto fail;
    PyList_SET_ITEM(list, (Py_ssize_t)i, t);
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
    PyObject *k = PyLong_FromLong(kind), *s = PyLong_FromLong(status);
    if (!k || !s) {
      Py_XDECREF(k);
      Py_XDECREF(s);
      goto fail;
    }
    PyTuple_SET_ITEM(t, 2, k);
    PyTuple_SET_ITEM(t, 3, s);
    for (uint32_t j = 0; j < self->n_slots; j++) {
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
  }
  self->keys = list;
  return Py_NewRef(list);
fail:
  Py_DECREF(list);
  return NULL;
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
    {"which", (getter)Batch_array, NULL, "int64 key index per accepted span", (void *)0},
    {"ends", (getter)Batch_array, NULL, "int64 end time (ns) per accepted span", (void *)1},
    {"durs", (getter)Batch_array, NULL, "float64 duration (s) per accepted span", (void *)2},
    {NULL}};

static PyMethodDef Batch_methods[] = {
    {"resources", (PyCFunction)Batch_resources, METH_NOARGS,
     "Each resource_spans' Resource, serialized (b'' when absent)."},
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
