/*
 * wire — protobuf messages over NNG sockets (supervisor, worker, client).
 * Received bytes are untrusted: sizes are capped before decoding and every
 * decoded message passes protobuf_c_message_check().
 */
#ifndef MOONPEN_WIRE_H
#define MOONPEN_WIRE_H

#include <stddef.h>

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>

/* Packs m into a new nng_msg (*out); 0 or -ENOMEM. */
int wire_pack(const ProtobufCMessage *m, nng_msg **out) __attribute__((warn_unused_result));

/* Messages nested deeper than this are refused before decoding (protobuf-c
 * itself recurses without a bound). A Value table costs up to 3 levels, so
 * this admits the 32-table Value limit with room for the envelopes. */
#define WIRE_MAX_NESTING 160

/* Decodes buf[0..len) as a message of type d. Returns 0 and *out (free with
 * protobuf_c_message_free_unpacked), -EMSGSIZE when len > max, -EBADMSG
 * when the bytes are not a valid message of that type or nest messages deeper
 * than WIRE_MAX_NESTING, or -ENOMEM when an allocation failed. */
int wire_unpack(const ProtobufCMessageDescriptor *d, const void *buf, size_t len, size_t max,
		ProtobufCMessage **out) __attribute__((warn_unused_result));

/* Sends m on s (blocking). 0, -ENOMEM, or -EPIPE / -ETIMEDOUT / -EIO from NNG. */
int wire_send(nng_socket s, const ProtobufCMessage *m) __attribute__((warn_unused_result));

/* Receives one message of type d on s (blocking, subject to the socket's
 * receive timeout). 0 and *out, -ETIMEDOUT, -EPIPE (socket closed), -EMSGSIZE,
 * -EBADMSG, -EIO. */
int wire_recv(nng_socket s, const ProtobufCMessageDescriptor *d, size_t max, ProtobufCMessage **out)
    __attribute__((warn_unused_result));

/* Maps an NNG error number to a negative errno-style code. */
int wire_errno(int nng_err);

#endif
