/* What both raw-C baselines share: error exits, process CPU time, and connecting to the
 * broker the way Warren's AMQPConnection does (same frame_max and heartbeat), so that
 * neither baseline gets a different connection set-up. */
#ifndef WARREN_BASELINE_COMMON_H
#define WARREN_BASELINE_COMMON_H

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/resource.h>

static _Noreturn void die(const char *what, const char *detail) {
  fprintf(stderr, "%s: %s%s%s\n", BASELINE_NAME, what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static void check_status(int status, const char *what) {
  if (status != AMQP_STATUS_OK) die(what, amqp_error_string2(status));
}

static void check_reply(amqp_rpc_reply_t reply, const char *what) {
  switch (reply.reply_type) {
  case AMQP_RESPONSE_NORMAL:
    return;
  case AMQP_RESPONSE_LIBRARY_EXCEPTION:
    die(what, amqp_error_string2(reply.library_error));
  case AMQP_RESPONSE_SERVER_EXCEPTION:
    die(what, "the broker closed the channel or connection");
  default:
    die(what, "no reply");
  }
}

static double cpu_seconds(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

static amqp_connection_state_t connect_broker(void) {
  const char *env = getenv("WARREN_AMQP_URL");
  char *url = strdup(env && *env ? env : "amqp://guest:guest@127.0.0.1:5672/%2f");
  struct amqp_connection_info info;
  amqp_default_connection_info(&info);
  check_status(amqp_parse_url(url, &info), "parsing WARREN_AMQP_URL");
  if (info.ssl) die("amqps:// is not supported by the baseline", NULL);

  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t *socket = amqp_tcp_socket_new(conn);
  if (!socket) die("creating a socket", NULL);
  check_status(amqp_socket_open(socket, info.host, info.port), "connecting");
  /* Same frame_max (128 KiB) and heartbeat (30 s) as Warren's AMQPConnection. */
  check_reply(amqp_login(conn, info.vhost, 0, 131072, 30, AMQP_SASL_METHOD_PLAIN, info.user, info.password),
              "logging in");
  amqp_channel_open(conn, 1);
  check_reply(amqp_get_rpc_reply(conn), "channel.open");
  free(url);
  return conn;
}

static void disconnect(amqp_connection_state_t conn) {
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

/* Applies one frame read while waiting for publisher confirms: a basic.ack (single or
 * multiple) marks tags confirmed; a nack or a close ends the run. Returns how many
 * publishes the frame newly confirmed. `lowest` is the lowest tag not yet confirmed. */
static long settle_confirm(amqp_connection_state_t conn, amqp_frame_t *frame, unsigned char *confirmed,
                           uint64_t *lowest, long count) {
  long newly = 0;
  if (frame->frame_type == AMQP_FRAME_METHOD) {
    amqp_method_number_t id = frame->payload.method.id;
    if (id == AMQP_BASIC_NACK_METHOD) die("the broker nacked a publish", NULL);
    if (id == AMQP_BASIC_RETURN_METHOD) die("the broker returned a mandatory publish (unroutable)", NULL);
    if (id == AMQP_CHANNEL_CLOSE_METHOD || id == AMQP_CONNECTION_CLOSE_METHOD)
      die("the broker closed the channel or connection", NULL);
    if (id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *ack = frame->payload.method.decoded;
      uint64_t first = ack->multiple ? *lowest : ack->delivery_tag;
      for (uint64_t tag = first; tag <= ack->delivery_tag; tag++) {
        if (!confirmed[tag]) {
          confirmed[tag] = 1;
          newly++;
        }
      }
      while (*lowest <= (uint64_t)count && confirmed[*lowest]) (*lowest)++;
    }
  }
  amqp_maybe_release_buffers(conn);
  return newly;
}

#endif
