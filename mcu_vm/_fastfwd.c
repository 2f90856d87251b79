/* The MCU's per-packet path, native: one publisher packet to all of its subscribers in one call.
 *
 * What ``mcu_vm.rtp_forward`` and ``mcu_vm.passthrough`` describe, packet by packet, for each
 * subscriber stream (a ``Sink``): whether its frame is sent (keyframe-gated start, temporal
 * layers, paused), the rewrite (SSRC, contiguous sequence numbers, timestamp offset, payload
 * type, its header extensions, the VP8 picture id), the NACK history, the counters aiortc's
 * sender reports read, SRTP protection with the subscriber's session (libsrtp's own
 * ``srtp_protect``, the one pylibsrtp carries, called through its address) and the send to the
 * subscriber's ICE pair's socket (a video frame's packets together, in one ``sendmmsg`` once its
 * last one is in: the subscriber wakes once per frame). Whatever this cannot send straight (a paced subscriber, a TURN
 * relay, a transport it cannot read) goes to a Python callable, unprotected.
 *
 * Python decides everything that is not per packet (routes, layers, pacing, keyframe requests);
 * the reference for what is per packet is ``tests/unit/test_fastfwd.py``.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define HISTORY 512         /* packets per subscriber stream (NACKs older than 0.5 s are refused anyway) */
#define DROPS_REMEMBERED 256 /* a subscriber's dropped input sequence numbers, for late retransmissions */
#define FRAMES_REMEMBERED 64 /* per frame (RTP timestamp): sent with which picture-id shift, or not */
#define PAUSED (-1)
#define MAX_PACKET 1500      /* what is forwarded at most (header, extensions and payload) */
#define SRTP_TRAILER 144     /* pylibsrtp's SRTP_MAX_TRAILER_LEN */
#define NTP_EPOCH_OFFSET 2208988800ULL
#define BATCH 16             /* a frame's packets sent in one sendmmsg, at most */

typedef int (*srtp_protect_fn)(void *ctx, void *rtp, int *len);

typedef struct {
    PyObject_HEAD
    /* what this subscriber gets (video) */
    int video;
    int layer, target_layer;
    int waiting_for_keyframe, wants_keyframe, live;
    unsigned long long frames, forwarded, dropped, paused_frames, layer_frames_dropped;
    uint32_t frame_ts[FRAMES_REMEMBERED];
    int32_t frame_shift[FRAMES_REMEMBERED]; /* -1: not sent */
    int frame_count, frame_next;
    int32_t picture_shift;
    /* the rewrite, once bound */
    int bound;
    uint32_t ssrc, rtx_ssrc, timestamp_offset;
    int payload_type, rtx_payload_type, clock_rate;
    unsigned char mid[16];
    int mid_len, mid_id, abs_send_time_id, audio_level_id, extensions;
    /* sequence numbers: contiguous over what is sent (mcu_vm.rtp_forward.SequenceMap) */
    int have_in;
    uint16_t max_in, max_out;
    uint16_t drops[DROPS_REMEMBERED];
    int drop_count, drop_next, have_forgotten;
    uint16_t forgotten;
    uint16_t rtx_sequence;
    /* history (unprotected packets) for NACKs */
    PyObject *history[HISTORY];
    uint16_t history_seq[HISTORY];
    uint32_t history_ts[HISTORY];
    int have_newest;
    uint32_t newest_timestamp;
    unsigned long long packets, octets, sent_direct, sent_slow, send_errors, too_big;
    /* where it goes */
    PyObject *sender_dict;   /* the aiortc sender's __dict__ (its reports' counters) */
    PyObject *transport;     /* the subscriber's RTCDtlsTransport */
    PyObject *connected;     /* aiortc's State.CONNECTED */
    PyObject *nominated;     /* aioice's Connection._nominated (a dict, cleared on close) */
    PyObject *resolve;       /* resolve(sink): a new ICE pair (or SRTP session) was seen */
    PyObject *slow;          /* slow(sink, data): what cannot be sent straight */
    PyObject *route_pair;    /* the pair the route below is for */
    PyObject *route_transport; /* its asyncio transport (read: _closing) */
    PyObject *srtp_session;  /* the pylibsrtp Session ctx belongs to (kept alive) */
    void *srtp_ctx;
    srtp_protect_fn protect;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    /* a video frame's packets, protected, until its last one (one sendmmsg: one wake-up of the
     * subscriber per frame, not per packet) */
    unsigned char (*batch)[MAX_PACKET + SRTP_TRAILER];
    int batch_len[BATCH];
    int batch_count;
    uint32_t batch_ts;
    unsigned long long batches;
} Sink;

static PyObject *s_state, *s_tx_srtp, *s_closing, *s_dict, *s_wm_pacer, *s_rate_bps, *s_one;
static PyObject *s_ntp, *s_rtp_ts, *s_octets, *s_packets, *s_tx_bytes, *s_tx_packets;

/* -- lifecycle ------------------------------------------------------------------------------ */

static int Sink_traverse(Sink *self, visitproc visit, void *arg) {
    Py_VISIT(self->sender_dict);
    Py_VISIT(self->transport);
    Py_VISIT(self->connected);
    Py_VISIT(self->nominated);
    Py_VISIT(self->resolve);
    Py_VISIT(self->slow);
    Py_VISIT(self->route_pair);
    Py_VISIT(self->route_transport);
    Py_VISIT(self->srtp_session);
    return 0;
}

static int Sink_clear(Sink *self) {
    Py_CLEAR(self->sender_dict);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->connected);
    Py_CLEAR(self->nominated);
    Py_CLEAR(self->resolve);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->route_pair);
    Py_CLEAR(self->route_transport);
    Py_CLEAR(self->srtp_session);
    self->fd = -1;
    self->batch_count = 0;
    return 0;
}

static void Sink_dealloc(Sink *self) {
    PyObject_GC_UnTrack(self);
    Sink_clear(self);
    for (int i = 0; i < HISTORY; i++) Py_CLEAR(self->history[i]);
    free(self->batch);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Sink_init(Sink *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"video", NULL};
    int video = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "p", kwlist, &video)) return -1;
    self->video = video;
    self->layer = self->target_layer = 2;
    self->waiting_for_keyframe = video;
    self->live = 1;
    self->rtx_payload_type = -1;
    self->fd = -1;
    return 0;
}

/* -- what is sent (pure) -------------------------------------------------------------------- */

/* 1: sent; 0: not sent; 2: not sent, and the subscriber should ask for a keyframe */
static int admit(Sink *s, int keyframe, int layer) {
    if (keyframe) s->wants_keyframe = 0;
    if (s->target_layer != s->layer) {
        if (s->layer == PAUSED) {
            if (keyframe) s->layer = s->target_layer;
        } else if (layer <= 0) {
            s->layer = s->target_layer;
        }
    }
    if (s->layer == PAUSED) {
        s->paused_frames++;
        return 0;
    }
    if (layer >= 0 && layer > s->layer) {
        s->layer_frames_dropped++;
        return 0;
    }
    if (s->waiting_for_keyframe) {
        if (!keyframe) {
            s->dropped++;
            return 2;
        }
        s->waiting_for_keyframe = 0;
    }
    s->frames++;
    return 1;
}

static void remember_drop(Sink *s, uint16_t seq) {
    if (s->drop_count == DROPS_REMEMBERED) {
        s->forgotten = s->drops[s->drop_next];
        s->have_forgotten = 1;
    } else {
        s->drop_count++;
    }
    s->drops[s->drop_next] = seq;
    s->drop_next = (s->drop_next + 1) % DROPS_REMEMBERED;
}

/* the output sequence number, or -1: cannot be placed */
static int seq_forward(Sink *s, uint16_t seq) {
    if (!s->have_in) {
        s->have_in = 1;
        s->max_in = seq;
        s->max_out = (uint16_t)(s->max_out + 1);
        return s->max_out;
    }
    uint16_t ahead = (uint16_t)(seq - s->max_in);
    if (ahead > 0 && ahead < 0x8000) {
        s->max_in = seq;
        s->max_out = (uint16_t)(s->max_out + ahead);
        return s->max_out;
    }
    uint16_t behind = (uint16_t)(s->max_in - seq);
    if (s->have_forgotten && (uint16_t)(s->forgotten - seq) < 0x8000) return -1;
    int skipped = 0;
    for (int i = 0; i < s->drop_count; i++) {
        uint16_t since = (uint16_t)(s->drops[i] - seq);
        if (since == 0) return -1;
        if (since <= behind) skipped++;
    }
    return (uint16_t)(s->max_out - behind + skipped);
}

static void seq_drop(Sink *s, uint16_t seq) {
    if (!s->have_in) {
        s->have_in = 1;
        s->max_in = seq;
        remember_drop(s, seq);
        return;
    }
    uint16_t ahead = (uint16_t)(seq - s->max_in);
    if (ahead > 0 && ahead < 0x8000) {
        s->max_out = (uint16_t)(s->max_out + ahead - 1);
        s->max_in = seq;
        remember_drop(s, seq);
    }
}

static uint64_t ntp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t secs = (uint64_t)ts.tv_sec + NTP_EPOCH_OFFSET;
    uint64_t frac = ((uint64_t)ts.tv_nsec << 32) / 1000000000ULL;
    return (secs << 32) | frac;
}

static inline void put16(unsigned char *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xFF; }
static inline void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = (v >> 16) & 0xFF; p[2] = (v >> 8) & 0xFF; p[3] = v & 0xFF; }
static inline uint16_t get16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }

/* the packet for this subscriber into out (room for MAX_PACKET + SRTP_TRAILER); its length, or -1 */
static Py_ssize_t build(Sink *s, unsigned char *out, uint16_t seq, uint32_t timestamp, int marker,
                        const unsigned char *payload, Py_ssize_t size, int level, uint64_t ntp,
                        int pid_at, int pid_bits, int32_t shift) {
    unsigned char *p = out;
    p[0] = s->extensions ? 0x90 : 0x80;
    p[1] = (unsigned char)((marker ? 0x80 : 0) | (s->payload_type & 0x7F));
    put16(p + 2, seq);
    put32(p + 4, timestamp);
    put32(p + 8, s->ssrc);
    p += 12;
    if (s->extensions) {
        unsigned char *block = p;
        p += 4;
        if (s->mid_id && s->mid_len) {
            *p++ = (unsigned char)((s->mid_id << 4) | (s->mid_len - 1));
            memcpy(p, s->mid, s->mid_len);
            p += s->mid_len;
        }
        if (s->abs_send_time_id) {
            uint32_t sent_at = (uint32_t)((ntp >> 14) & 0xFFFFFF);
            *p++ = (unsigned char)((s->abs_send_time_id << 4) | 2);
            *p++ = (sent_at >> 16) & 0xFF;
            *p++ = (sent_at >> 8) & 0xFF;
            *p++ = sent_at & 0xFF;
        }
        if (s->audio_level_id && level >= 0) {
            *p++ = (unsigned char)(s->audio_level_id << 4);
            *p++ = (unsigned char)level;
        }
        while ((p - block - 4) % 4) *p++ = 0;
        block[0] = 0xBE;
        block[1] = 0xDE;
        put16(block + 2, (uint16_t)((p - block - 4) / 4));
    }
    if ((p - out) + size > MAX_PACKET) return -1;
    memcpy(p, payload, size);
    if (shift && pid_at >= 0 && pid_at + (pid_bits == 15 ? 2 : 1) <= size) {
        unsigned char *pid = p + pid_at;
        if (pid_bits == 15) {
            int value = (((pid[0] & 0x7F) << 8) | pid[1]) - shift;
            pid[0] = (unsigned char)(0x80 | ((value >> 8) & 0x7F));
            pid[1] = (unsigned char)(value & 0xFF);
        } else {
            pid[0] = (unsigned char)((pid[0] - shift) & 0x7F);
        }
    }
    return (p - out) + size;
}

/* -- where it goes -------------------------------------------------------------------------- */

static int dict_add(PyObject *dict, PyObject *key, long long by) {
    PyObject *old = PyDict_GetItemWithError(dict, key);
    long long value = old ? PyLong_AsLongLong(old) : 0;
    if (value == -1 && PyErr_Occurred()) return -1;
    PyObject *v = PyLong_FromLongLong(value + by);
    if (!v) return -1;
    int rc = PyDict_SetItem(dict, key, v);
    Py_DECREF(v);
    return rc;
}

/* 1: the transport is paced now (its packets wait for the Pacer: the Python path) */
static int paced(Sink *s) {
    PyObject *d = PyObject_GenericGetDict(s->transport, NULL);
    if (!d) return -1;
    PyObject *pacer = PyDict_GetItemWithError(d, s_wm_pacer);
    Py_DECREF(d);
    if (!pacer) return PyErr_Occurred() ? -1 : 0;
    if (pacer == Py_None) return 0;
    PyObject *rate = PyObject_GetAttr(pacer, s_rate_bps);
    if (!rate) return -1;
    int on = rate != Py_None;
    Py_DECREF(rate);
    return on;
}

static int call_slow(Sink *s, const unsigned char *data, Py_ssize_t len) {
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, len);
    if (!bytes) return -1;
    PyObject *r = PyObject_CallFunctionObjArgs(s->slow, (PyObject *)s, bytes, NULL);
    Py_DECREF(bytes);
    if (!r) return -1;
    Py_DECREF(r);
    s->sent_slow++;
    return 0;
}

/* 1: the subscriber's DTLS transport is connected; -1: a Python error */
static int is_connected(Sink *s) {
    PyObject *state = PyObject_GetAttr(s->transport, s_state);
    if (!state) return -1;
    int connected = state == s->connected;
    Py_DECREF(state);
    return connected;
}

/* 1: the straight route (fd, address, SRTP session) is good for the subscriber's nominated pair
 * now; 0: this packet is not sent (not connected, no pair, its socket closing); 2: take the slow
 * path; -1: a Python error. ``pacing``: a paced subscriber takes the slow path */
static int route(Sink *s, int pacing) {
    if (pacing) {
        int p = paced(s);
        if (p < 0) return -1;
        if (p) return 2;
    }
    int connected = is_connected(s);
    if (connected <= 0) return connected; /* not connected (yet, or any more): this subscriber misses it */
    if (!s->nominated) return 2;
    PyObject *pair = PyDict_GetItemWithError(s->nominated, s_one);
    if (!pair) return PyErr_Occurred() ? -1 : 0;
    PyObject *srtp = PyObject_GetAttr(s->transport, s_tx_srtp);
    if (!srtp) return -1;
    int stale = pair != s->route_pair || srtp != s->srtp_session;
    Py_DECREF(srtp);
    if (stale) {
        PyObject *r = PyObject_CallOneArg(s->resolve, (PyObject *)s);
        if (!r) return -1;
        Py_DECREF(r);
        if (pair != s->route_pair) return 2; /* no straight route to it */
    }
    if (s->fd < 0 || !s->protect || !s->srtp_ctx) return 2;
    PyObject *closing = PyObject_GetAttr(s->route_transport, s_closing);
    if (!closing) return -1;
    int is_closing = PyObject_IsTrue(closing);
    Py_DECREF(closing);
    return is_closing ? 0 : 1;
}

static int count_sent(Sink *s, long long bytes, long long packets) {
    s->sent_direct += packets;
    PyObject *d = PyObject_GenericGetDict(s->transport, NULL);
    if (!d) return -1;
    int rc = dict_add(d, s_tx_bytes, bytes) < 0 || dict_add(d, s_tx_packets, packets) < 0 ? -1 : 0;
    Py_DECREF(d);
    return rc;
}

/* send the frame's packets held for this subscriber, in one sendmmsg; -1 with a Python error */
static int flush(Sink *s) {
    int count = s->batch_count;
    if (!count) return 0;
    s->batch_count = 0;
    int r = route(s, 0); /* still the pair (and socket) they were protected for; paced since or not */
    if (r != 1) return r < 0 ? -1 : 0;
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    long long bytes = 0;
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < count; i++) {
        iov[i].iov_base = s->batch[i];
        iov[i].iov_len = s->batch_len[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &s->addr;
        msgs[i].msg_hdr.msg_namelen = s->addr_len;
        bytes += s->batch_len[i];
    }
    int sent = 0;
    while (sent < count) {
        int n = sendmmsg(s->fd, msgs + sent, count - sent, MSG_DONTWAIT);
        if (n <= 0) break;
        sent += n;
    }
    s->send_errors += count - sent; /* a full socket buffer: these copies are lost, as on the wire */
    s->batches++;
    if (sent < count) {
        bytes = 0;
        for (int i = 0; i < sent; i++) bytes += s->batch_len[i];
    }
    return sent ? count_sent(s, bytes, sent) : 0;
}

/* protect and send one packet (len bytes in buf, room for the trailer behind), or hold it with
 * its frame's others (video: ``frame`` set) until the frame's last (``last``); -1 with a Python error */
static int out(Sink *s, unsigned char *buf, Py_ssize_t len, int frame, uint32_t ts, int last) {
    if (s->batch_count && (!frame || ts != s->batch_ts) && flush(s) < 0) return -1;
    int r = route(s, 1);
    if (r < 0) return -1;
    if (r == 0) return 0;
    if (r == 2) return call_slow(s, buf, len);
    int n = (int)len;
    if (s->protect(s->srtp_ctx, buf, &n) != 0) {
        s->send_errors++;
        return 0;
    }
    if (frame) {
        if (!s->batch && !(s->batch = malloc(sizeof(*s->batch) * BATCH))) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(s->batch[s->batch_count], buf, n);
        s->batch_len[s->batch_count++] = n;
        s->batch_ts = ts;
        return last || s->batch_count == BATCH ? flush(s) : 0;
    }
    if (sendto(s->fd, buf, n, MSG_DONTWAIT, (struct sockaddr *)&s->addr, s->addr_len) < 0) {
        s->send_errors++; /* a full socket buffer: this copy is lost, as on the wire */
        return 0;
    }
    return count_sent(s, n, 1);
}

static int set_long(PyObject *dict, PyObject *key, unsigned long long v) {
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    if (!o) return -1;
    int rc = PyDict_SetItem(dict, key, o);
    Py_DECREF(o);
    return rc;
}

/* one packet of a frame this subscriber gets: 1 sent, 0 not placed, -1 error */
static int send_one(Sink *s, uint16_t in_seq, uint32_t in_ts, int marker, const unsigned char *payload,
                    Py_ssize_t size, int level, uint64_t ntp, int pid_at, int pid_bits, int32_t shift) {
    int seq = seq_forward(s, in_seq);
    if (seq < 0) return 0;
    uint32_t ts = in_ts + s->timestamp_offset;
    unsigned char buf[MAX_PACKET + SRTP_TRAILER];
    Py_ssize_t len = build(s, buf, (uint16_t)seq, ts, marker, payload, size, level, ntp, pid_at, pid_bits, shift);
    if (len < 0) {
        s->too_big++;
        return 0;
    }
    PyObject *kept = PyBytes_FromStringAndSize((const char *)buf, len);
    if (!kept) return -1;
    int slot = seq % HISTORY;
    Py_XSETREF(s->history[slot], kept);
    s->history_seq[slot] = (uint16_t)seq;
    s->history_ts[slot] = ts;
    s->have_newest = 1;
    s->newest_timestamp = ts;
    s->packets++;
    s->octets += size;
    if (s->sender_dict) {
        if (set_long(s->sender_dict, s_ntp, ntp) < 0 || set_long(s->sender_dict, s_rtp_ts, ts) < 0 ||
            set_long(s->sender_dict, s_octets, s->octets) < 0 || set_long(s->sender_dict, s_packets, s->packets) < 0)
            return -1;
    }
    if (out(s, buf, len, s->video, ts, marker) < 0) return -1;
    return 1;
}

/* -- Python: Sink --------------------------------------------------------------------------- */

static PyObject *Sink_bind(Sink *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"ssrc", "rtx_ssrc", "payload_type", "rtx_payload_type", "clock_rate", "mid",
                             "mid_id", "abs_send_time_id", "audio_level_id", "sequence_start",
                             "timestamp_offset", "rtx_sequence", "sender_dict", "transport", "connected",
                             "nominated", "resolve", "slow", NULL};
    unsigned int ssrc, rtx_ssrc, ts_offset;
    int pt, rtx_pt, clock, mid_id, ast_id, level_id, seq_start, rtx_seq;
    Py_buffer mid;
    PyObject *sender_dict, *transport, *connected, *nominated, *resolve, *slow;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "IIiiiy*iiiiIiOOOOOO", kwlist, &ssrc, &rtx_ssrc, &pt, &rtx_pt, &clock,
                                     &mid, &mid_id, &ast_id, &level_id, &seq_start, &ts_offset, &rtx_seq, &sender_dict,
                                     &transport, &connected, &nominated, &resolve, &slow))
        return NULL;
    if (mid.len > 16 || (mid_id && (mid_id < 1 || mid_id > 14)) || ast_id < 0 || ast_id > 14 || level_id < 0 ||
        level_id > 14 || pt < 0 || pt > 127 || rtx_pt > 127) {
        PyBuffer_Release(&mid);
        PyErr_SetString(PyExc_ValueError, "parameters out of range");
        return NULL;
    }
    self->ssrc = ssrc;
    self->rtx_ssrc = rtx_ssrc;
    self->payload_type = pt;
    self->rtx_payload_type = rtx_pt;
    self->clock_rate = clock;
    memcpy(self->mid, mid.buf, mid.len);
    self->mid_len = (int)mid.len;
    PyBuffer_Release(&mid);
    self->mid_id = mid_id;
    self->abs_send_time_id = ast_id;
    self->audio_level_id = level_id;
    self->extensions = (mid_id && self->mid_len) || ast_id || level_id;
    self->max_out = (uint16_t)(seq_start - 1);
    self->timestamp_offset = ts_offset;
    self->rtx_sequence = (uint16_t)rtx_seq;
    Py_XSETREF(self->sender_dict, sender_dict == Py_None ? NULL : Py_NewRef(sender_dict));
    Py_XSETREF(self->transport, Py_NewRef(transport));
    Py_XSETREF(self->connected, Py_NewRef(connected));
    Py_XSETREF(self->nominated, nominated == Py_None ? NULL : Py_NewRef(nominated));
    Py_XSETREF(self->resolve, Py_NewRef(resolve));
    Py_XSETREF(self->slow, Py_NewRef(slow));
    self->bound = 1;
    Py_RETURN_NONE;
}

static PyObject *Sink_set_route(Sink *self, PyObject *args) {
    PyObject *pair, *route_transport, *session;
    int fd, port;
    const char *host;
    unsigned long long ctx, protect;
    if (!PyArg_ParseTuple(args, "OOisiOKK", &pair, &route_transport, &fd, &host, &port, &session, &ctx, &protect))
        return NULL;
    memset(&self->addr, 0, sizeof(self->addr));
    self->fd = -1;
    if (fd >= 0) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&self->addr;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&self->addr;
        if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons((uint16_t)port);
            self->addr_len = sizeof(*v4);
            self->fd = fd;
        } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons((uint16_t)port);
            self->addr_len = sizeof(*v6);
            self->fd = fd;
        }
    }
    Py_XSETREF(self->route_pair, Py_NewRef(pair));
    Py_XSETREF(self->route_transport, Py_NewRef(route_transport));
    Py_XSETREF(self->srtp_session, Py_NewRef(session));
    self->srtp_ctx = (void *)(uintptr_t)ctx;
    self->protect = (srtp_protect_fn)(uintptr_t)protect;
    return PyBool_FromLong(self->fd >= 0);
}

static PyObject *Sink_admit(Sink *self, PyObject *args) {
    int keyframe, layer;
    if (!PyArg_ParseTuple(args, "pi", &keyframe, &layer)) return NULL;
    return PyLong_FromLong(admit(self, keyframe, layer));
}

static PyObject *Sink_forward_seq(Sink *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    int out_seq = seq_forward(self, (uint16_t)seq);
    if (out_seq < 0) Py_RETURN_NONE;
    return PyLong_FromLong(out_seq);
}

static PyObject *Sink_drop(Sink *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    seq_drop(self, (uint16_t)seq);
    Py_RETURN_NONE;
}

static PyObject *Sink_build(Sink *self, PyObject *args) {
    int seq, marker, level;
    unsigned int ts;
    unsigned long long ntp;
    Py_buffer payload;
    if (!PyArg_ParseTuple(args, "iIiy*iK", &seq, &ts, &marker, &payload, &level, &ntp)) return NULL;
    unsigned char buf[MAX_PACKET + SRTP_TRAILER];
    Py_ssize_t len = build(self, buf, (uint16_t)seq, ts, marker, payload.buf, payload.len, level, ntp, -1, 0, 0);
    PyBuffer_Release(&payload);
    if (len < 0) {
        PyErr_SetString(PyExc_ValueError, "packet too big");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)buf, len);
}

static PyObject *Sink_send(Sink *self, PyObject *args) {
    int seq, marker, level;
    unsigned int ts;
    Py_buffer payload;
    if (!PyArg_ParseTuple(args, "iIiy*i", &seq, &ts, &marker, &payload, &level)) return NULL;
    if (!self->bound) {
        PyBuffer_Release(&payload);
        PyErr_SetString(PyExc_RuntimeError, "not bound");
        return NULL;
    }
    int rc = send_one(self, (uint16_t)seq, ts, marker, payload.buf, payload.len, level, ntp_now(), -1, 0, 0);
    PyBuffer_Release(&payload);
    if (rc < 0) return NULL;
    return PyBool_FromLong(rc);
}

static PyObject *Sink_sent(Sink *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    if (seq < 0 || seq > 0xFFFF) Py_RETURN_NONE;
    int slot = (int)(seq % HISTORY);
    if (!self->history[slot] || self->history_seq[slot] != seq) Py_RETURN_NONE;
    return Py_BuildValue("(OlI)", self->history[slot], seq, self->history_ts[slot]);
}

/* resend a NACKed packet: on the RTX stream when negotiated (RFC 4588), else as it was */
static PyObject *Sink_resend(Sink *self, PyObject *arg) {
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) return NULL;
    if (seq < 0 || seq > 0xFFFF || !self->bound) Py_RETURN_FALSE;
    int slot = (int)(seq % HISTORY);
    PyObject *kept = self->history[slot];
    if (!kept || self->history_seq[slot] != seq) Py_RETURN_FALSE;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(kept);
    Py_ssize_t len = PyBytes_GET_SIZE(kept);
    unsigned char buf[MAX_PACKET + 2 + SRTP_TRAILER];
    Py_ssize_t n;
    if (self->rtx_payload_type >= 0) {
        Py_ssize_t header = 12 + ((data[0] & 0x10) ? 4 + 4 * get16(data + 14) : 0);
        if (header > len) Py_RETURN_FALSE;
        memcpy(buf, data, header);
        buf[1] = (unsigned char)((buf[1] & 0x80) | self->rtx_payload_type);
        put16(buf + 2, self->rtx_sequence);
        put32(buf + 8, self->rtx_ssrc);
        self->rtx_sequence++;
        put16(buf + header, (uint16_t)seq);
        memcpy(buf + header + 2, data + header, len - header);
        n = len + 2;
    } else {
        memcpy(buf, data, len);
        n = len;
    }
    if (out(self, buf, n, 0, 0, 0) < 0) return NULL; /* at once, not held */
    Py_RETURN_TRUE;
}

static PyObject *Sink_get_newest(Sink *self, void *closure) {
    if (!self->have_newest) Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(self->newest_timestamp);
}

static PyMethodDef Sink_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))Sink_bind, METH_VARARGS | METH_KEYWORDS, "Bind to the negotiated sender."},
    {"set_route", (PyCFunction)Sink_set_route, METH_VARARGS, "(pair, transport, fd, host, port, srtp, ctx, protect)"},
    {"admit", (PyCFunction)Sink_admit, METH_VARARGS, "(keyframe, layer or -1): 1 sent, 0 not, 2 not and ask"},
    {"forward_sequence", (PyCFunction)Sink_forward_seq, METH_O, "The output number of an input one, or None."},
    {"drop", (PyCFunction)Sink_drop, METH_O, "An input packet this subscriber is not sent."},
    {"build", (PyCFunction)Sink_build, METH_VARARGS, "(seq, ts, marker, payload, level or -1, ntp) -> bytes"},
    {"send", (PyCFunction)Sink_send, METH_VARARGS, "(in seq, in ts, marker, payload, level or -1) -> placed"},
    {"sent", (PyCFunction)Sink_sent, METH_O, "(packet, seq, ts) still in the history, or None."},
    {"resend", (PyCFunction)Sink_resend, METH_O, "Resend a NACKed packet (RTX when negotiated)."},
    {NULL}};

#define U64(name) {#name, T_ULONGLONG, offsetof(Sink, name), READONLY, NULL}
static PyMemberDef Sink_members[] = {
    {"layer", T_INT, offsetof(Sink, layer), 0, NULL},
    {"target_layer", T_INT, offsetof(Sink, target_layer), 0, NULL},
    {"waiting_for_keyframe", T_BOOL, offsetof(Sink, waiting_for_keyframe), 0, NULL},
    {"wants_keyframe", T_BOOL, offsetof(Sink, wants_keyframe), 0, NULL},
    {"live", T_BOOL, offsetof(Sink, live), 0, NULL},
    {"bound", T_BOOL, offsetof(Sink, bound), READONLY, NULL},
    {"video", T_BOOL, offsetof(Sink, video), READONLY, NULL},
    {"ssrc", T_UINT, offsetof(Sink, ssrc), READONLY, NULL},
    {"clock_rate", T_INT, offsetof(Sink, clock_rate), READONLY, NULL},
    {"timestamp_offset", T_UINT, offsetof(Sink, timestamp_offset), READONLY, NULL},
    {"transport", T_OBJECT, offsetof(Sink, transport), READONLY, NULL},
    U64(frames), U64(forwarded), U64(dropped), U64(paused_frames), U64(layer_frames_dropped), U64(packets),
    U64(octets), U64(sent_direct), U64(sent_slow), U64(send_errors), U64(too_big), U64(batches),
    {"held", T_INT, offsetof(Sink, batch_count), READONLY, NULL},
    {NULL}};

static PyGetSetDef Sink_getset[] = {{"newest_timestamp", (getter)Sink_get_newest, NULL, NULL, NULL}, {NULL}};

static PyTypeObject SinkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mcu_vm._fastfwd.Sink",
    .tp_doc = "One subscriber stream of one publisher: what it is sent, rewritten, protected and sent.",
    .tp_basicsize = sizeof(Sink),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sink_init,
    .tp_dealloc = (destructor)Sink_dealloc,
    .tp_traverse = (traverseproc)Sink_traverse,
    .tp_clear = (inquiry)Sink_clear,
    .tp_methods = Sink_methods,
    .tp_members = Sink_members,
    .tp_getset = Sink_getset,
};

/* -- Python: forward ------------------------------------------------------------------------ */

/* forward(sinks, seq, timestamp, marker, payload, keyframe, layer, picture_id_at, picture_id_bits,
 *         level, held) -> (the sinks that dropped a frame waiting for a keyframe: they should ask,
 *         or None; whether some sink holds packets of a frame not yet ended: flush them soon)
 * layer, picture_id_at, level: -1 for none; level: its byte (V bit and level) */
static PyObject *forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 11 || !PyTuple_Check(args[0]) || !PyBytes_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "forward(sinks: tuple, seq, ts, marker, payload: bytes, keyframe, layer, pid_at, pid_bits, level, held)");
        return NULL;
    }
    long seq = PyLong_AsLong(args[1]);
    unsigned long ts = PyLong_AsUnsignedLong(args[2]);
    long marker = PyLong_AsLong(args[3]);
    int keyframe = PyObject_IsTrue(args[5]);
    long layer = PyLong_AsLong(args[6]);
    long pid_at = PyLong_AsLong(args[7]);
    long pid_bits = PyLong_AsLong(args[8]);
    long level = PyLong_AsLong(args[9]);
    int held = PyObject_IsTrue(args[10]);
    if (PyErr_Occurred()) return NULL;
    const unsigned char *payload = (const unsigned char *)PyBytes_AS_STRING(args[4]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[4]);
    PyObject *sinks = args[0];
    PyObject *asks = NULL;
    int pending = 0;
    uint64_t ntp = ntp_now(); /* one send time for the pass (abs-send-time, the sender reports) */
    Py_ssize_t n = PyTuple_GET_SIZE(sinks);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(sinks, i);
        if (!PyObject_TypeCheck(item, &SinkType)) continue;
        Sink *s = (Sink *)item;
        if (!s->bound || !s->live) continue;
        int rc;
        if (!s->video) {
            if (held) continue;
            rc = send_one(s, (uint16_t)seq, (uint32_t)ts, (int)marker, payload, size, (int)level, ntp, -1, 0, 0);
            if (rc < 0) goto error;
            if (rc) s->forwarded++;
            continue;
        }
        int32_t shift = -1;
        int found = 0;
        for (int k = 0; k < s->frame_count; k++) {
            int at = (s->frame_next - 1 - k + FRAMES_REMEMBERED) % FRAMES_REMEMBERED;
            if (s->frame_ts[at] == (uint32_t)ts) {
                shift = s->frame_shift[at];
                found = 1;
                break;
            }
        }
        if (!found) {
            int admitted = 0;
            int up = is_connected(s);
            if (up < 0) goto error;
            if (!up) continue; /* nothing it could receive yet: no frame decided, a keyframe not spent */
            if (!held) {
                int verdict = admit(s, keyframe, (int)layer);
                admitted = verdict == 1;
                if (verdict == 2) {
                    if (!asks && !(asks = PyList_New(0))) goto error;
                    if (PyList_Append(asks, item) < 0) goto error;
                }
            }
            if (admitted && s->frames == 1) s->picture_shift = 0;
            shift = admitted ? s->picture_shift : -1;
            if (shift < 0) s->picture_shift++;
            s->frame_ts[s->frame_next] = (uint32_t)ts;
            s->frame_shift[s->frame_next] = shift;
            s->frame_next = (s->frame_next + 1) % FRAMES_REMEMBERED;
            if (s->frame_count < FRAMES_REMEMBERED) s->frame_count++;
        }
        if (shift < 0) {
            seq_drop(s, (uint16_t)seq);
            continue;
        }
        rc = send_one(s, (uint16_t)seq, (uint32_t)ts, (int)marker, payload, size, -1, ntp, (int)pid_at, (int)pid_bits, shift);
        if (rc < 0) goto error;
        if (rc) s->forwarded++;
        pending |= s->batch_count > 0;
    }
    return Py_BuildValue("(NO)", asks ? asks : Py_NewRef(Py_None), pending ? Py_True : Py_False);
error:
    Py_XDECREF(asks);
    return NULL;
}

/* flush(sinks): send what they hold of frames whose last packet did not come (lost, or late) */
static PyObject *py_flush(PyObject *module, PyObject *sinks) {
    if (!PyTuple_Check(sinks)) {
        PyErr_SetString(PyExc_TypeError, "flush(sinks: tuple)");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(sinks); i++) {
        PyObject *item = PyTuple_GET_ITEM(sinks, i);
        if (PyObject_TypeCheck(item, &SinkType) && flush((Sink *)item) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_ntp_now(PyObject *module, PyObject *unused) { return PyLong_FromUnsignedLongLong(ntp_now()); }

static PyMethodDef module_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))forward, METH_FASTCALL, "One publisher packet to its subscribers."},
    {"flush", py_flush, METH_O, "Send what the sinks hold of frames not yet ended."},
    {"ntp_now", py_ntp_now, METH_NOARGS, "The current time as a 64-bit NTP timestamp."},
    {NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastfwd", "The MCU's per-packet path, native.", -1, module_methods};

#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return NULL

PyMODINIT_FUNC PyInit__fastfwd(void) {
    INTERN(s_state, "_state");
    INTERN(s_tx_srtp, "_tx_srtp");
    INTERN(s_closing, "_closing");
    INTERN(s_dict, "__dict__");
    INTERN(s_wm_pacer, "wm_pacer");
    INTERN(s_rate_bps, "rate_bps");
    INTERN(s_ntp, "_RTCRtpSender__ntp_timestamp");
    INTERN(s_rtp_ts, "_RTCRtpSender__rtp_timestamp");
    INTERN(s_octets, "_RTCRtpSender__octet_count");
    INTERN(s_packets, "_RTCRtpSender__packet_count");
    INTERN(s_tx_bytes, "_RTCDtlsTransport__tx_bytes");
    INTERN(s_tx_packets, "_RTCDtlsTransport__tx_packets");
    if (!(s_one = PyLong_FromLong(1))) return NULL;
    if (PyType_Ready(&SinkType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Sink", (PyObject *)&SinkType) < 0 || PyModule_AddIntConstant(m, "HISTORY", HISTORY) < 0 ||
        PyModule_AddIntConstant(m, "MAX_PACKET", MAX_PACKET) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
