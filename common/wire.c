/*
 * wire — protobuf over NNG (every process). Trusts nothing it receives: the
 * size cap comes first, then decoding, then protobuf_c_message_check().
 */
#include "common/wire.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int wire_errno(int nng_err)
{
	switch (nng_err) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECONNSHUT:
	case NNG_ECONNRESET:
	case NNG_ECANCELED:
		return -EPIPE;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

int wire_pack(const ProtobufCMessage *m, nng_msg **out)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	nng_msg *msg;

	if (nng_msg_alloc(&msg, len) != 0)
		return -ENOMEM;
	protobuf_c_message_pack(m, nng_msg_body(msg));
	*out = msg;
	return 0;
}

/* ---- nesting bound, before protobuf-c recurses ---------------------------------
 * protobuf-c unpacks nested messages recursively with no depth limit, so a
 * hostile sender could nest Values a few bytes per level until the decoder
 * overflows its stack. This walker reads the wire format with the message
 * descriptors and refuses messages nested deeper than WIRE_MAX_NESTING before
 * protobuf-c sees them; its own recursion stops at that bound. */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	unsigned shift = 0;

	*v = 0;
	while (*p < end && shift < 64) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
		shift += 7;
	}
	return -1;
}

static int nesting_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
		      unsigned depth)
{
	if (depth > WIRE_MAX_NESTING)
		return 0;
	while (p < end) {
		uint64_t key, n;
		const ProtobufCFieldDescriptor *f;
		if (read_varint(&p, end, &key) < 0)
			return 0;
		switch (key & 7) {
		case 0:
			if (read_varint(&p, end, &n) < 0)
				return 0;
			break;
		case 1:
		case 5:
			n = (key & 7) == 1 ? 8 : 4;
			if ((uint64_t)(end - p) < n)
				return 0;
			p += n;
			break;
		case 2:
			if (read_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
				return 0;
			f = key >> 3 <= UINT32_MAX
				? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
				: NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
			    !nesting_ok(f->descriptor, p, p + n, depth + 1))
				return 0;
			p += n;
			break;
		default:
			return 0; /* groups and invalid wire types: protobuf-c refuses them too */
		}
	}
	return 1;
}

/* protobuf-c returns NULL both for bad bytes and for a failed allocation: this
 * allocator (plain malloc/free, so the message is still freed with a NULL
 * allocator) notes the latter, so that running out of memory is never
 * reported as the peer's fault. */
static void *track_alloc(void *oom, size_t size)
{
	void *p = malloc(size);

	if (p == NULL)
		*(int *)oom = 1;
	return p;
}

static void track_free(void *oom, void *p)
{
	(void)oom;
	free(p);
}

int wire_unpack(const ProtobufCMessageDescriptor *d, const void *buf, size_t len, size_t max,
		ProtobufCMessage **out)
{
	ProtobufCMessage *m;
	int oom = 0;
	ProtobufCAllocator a = {track_alloc, track_free, &oom};

	if (len > max)
		return -EMSGSIZE;
	if (!nesting_ok(d, buf, (const uint8_t *)buf + len, 0))
		return -EBADMSG;
	m = protobuf_c_message_unpack(d, &a, len, buf);
	if (m == NULL)
		return oom ? -ENOMEM : -EBADMSG;
	if (!protobuf_c_message_check(m)) {
		protobuf_c_message_free_unpacked(m, NULL);
		return -EBADMSG;
	}
	*out = m;
	return 0;
}

int wire_send(nng_socket s, const ProtobufCMessage *m)
{
	nng_msg *msg;
	int r = wire_pack(m, &msg);

	if (r < 0)
		return r;
	r = nng_sendmsg(s, msg, 0);
	if (r != 0) {
		nng_msg_free(msg);
		return wire_errno(r);
	}
	return 0;
}

int wire_recv(nng_socket s, const ProtobufCMessageDescriptor *d, size_t max, ProtobufCMessage **out)
{
	nng_msg *msg;
	int r = nng_recvmsg(s, &msg, 0);

	if (r != 0)
		return wire_errno(r);
	r = wire_unpack(d, nng_msg_body(msg), nng_msg_len(msg), max, out);
	nng_msg_free(msg);
	return r;
}
