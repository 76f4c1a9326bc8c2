/*
 * wire — protobuf over NNG (every process). Trusts nothing it receives: the
 * size cap comes first, then decoding, then protobuf_c_message_check().
 */
#include "common/wire.h"

#include <errno.h>
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

int wire_unpack(const ProtobufCMessageDescriptor *d, const void *buf, size_t len, size_t max,
		ProtobufCMessage **out)
{
	ProtobufCMessage *m;

	if (len > max)
		return -EMSGSIZE;
	m = protobuf_c_message_unpack(d, NULL, len, buf);
	if (m == NULL)
		return -EBADMSG;
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

int wire_recv(nng_socket s, const ProtobufCMessageDescriptor *d, size_t max,
	      ProtobufCMessage **out)
{
	nng_msg *msg;
	int r = nng_recvmsg(s, &msg, 0);

	if (r != 0)
		return wire_errno(r);
	r = wire_unpack(d, nng_msg_body(msg), nng_msg_len(msg), max, out);
	nng_msg_free(msg);
	return r;
}
