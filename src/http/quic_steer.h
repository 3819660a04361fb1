/* Which worker a QUIC datagram belongs to (the HTTP/3 issue: "packets of
 * one connection must always reach the worker that owns it").
 *
 * Each worker binds its own UDP socket to the HTTP/3 port with
 * SO_REUSEPORT, in worker order, and the first socket of the group gets a
 * classic BPF program (SO_ATTACH_REUSEPORT_CBPF) that the kernel runs per
 * datagram: it reads the first byte of the destination connection ID and
 * answers that byte modulo the number of workers as the index of the
 * socket. Connection IDs the server issues start with the byte of the
 * worker that made them, so every later packet (short header, or long
 * header once the client uses a server ID; after migration too, since the
 * address plays no part) reaches that worker. A client's first packets
 * carry a DCID it chose: their first byte picks a worker too, the same one
 * for every packet with that DCID, and that worker is the one that answers
 * and issues the IDs. Datagrams too short to read go to socket 0.
 *
 * No state is shared between workers and nothing is copied between
 * threads: the kernel does the routing. */
#ifndef HX_HTTP_QUIC_STEER_H
#define HX_HTTP_QUIC_STEER_H

#include <stddef.h>
#include <stdint.h>

#define HX_QUIC_STEER_MAX_WORKERS 256 /* one byte of the connection ID */

/* Attaches the steering program to fd, a UDP socket bound with
 * SO_REUSEPORT (the group's sockets are indexed in bind order). 0 or
 * -errno. */
int hx_quic_steer_attach(int fd, unsigned nworkers);

/* The worker a datagram goes to, computed as the kernel program does (for
 * tests and for a listener without the program). */
unsigned hx_quic_steer_worker(const uint8_t *pkt, size_t len, unsigned nworkers);

/* Fills cid (len >= 1 bytes) with a connection ID of worker w: its first
 * byte is w, the rest from rnd (len - 1 random bytes). */
void hx_quic_cid_make(uint8_t *cid, size_t len, unsigned w, const uint8_t *rnd);

#endif
