/*
 * The subscribers of Benchmarks/run's webhook-delivery case: HTTP/1.1 servers on
 * 127.0.0.1 that answer every POST 200 at once (keep-alive) and time each request
 * against the publish time its event id carries (`<prefix>-<n>-<publish µs>`, as
 * consume_pg_baseline publishes them; the last "id" of the body, keys being sorted). One thread, epoll, all ports.
 *
 *   webhook_receiver --ports P1,P2,... --count N [--timeout S] [--trace FILE]
 *
 * Prints `ready` once listening; exits when every port received N requests, printing
 *   deliveries_per_sec=<float> p50_ms=<float> p99_ms=<float> duplicates=<int>
 * deliveries per second from the earliest publish to the last request, latencies publish →
 * request fully received. Exits 1 after S seconds (default 120) without all of them.
 * --trace writes one line per request, `<publish µs> <latency µs> <port>`, in arrival
 * order: to see when the slow ones came.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS 16
#define BUFFER (256 * 1024)

struct connection {
  int fd, port_index;
  size_t used;
  char buffer[BUFFER];
};

static long long realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int compare_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  int ports[MAX_PORTS], port_count = 0;
  long count = 0, timeout = 120;
  FILE *trace = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--ports")) {
      for (char *p = strtok(argv[i + 1], ","); p && port_count < MAX_PORTS; p = strtok(NULL, ",")) ports[port_count++] = atoi(p);
    } else if (!strcmp(argv[i], "--count")) {
      count = atol(argv[i + 1]);
    } else if (!strcmp(argv[i], "--timeout")) {
      timeout = atol(argv[i + 1]);
    } else if (!strcmp(argv[i], "--trace")) {
      trace = fopen(argv[i + 1], "w");
      if (!trace) die(argv[i + 1]);
    }
  }
  if (!port_count || count <= 0) {
    fprintf(stderr, "usage: webhook_receiver --ports P1,P2,... --count N [--timeout S] [--trace FILE]\n");
    return 2;
  }
  int epoll = epoll_create1(0);
  if (epoll < 0) die("epoll_create1");
  int listeners[MAX_PORTS];
  for (int i = 0; i < port_count; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ports[i])};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) || listen(fd, 1024)) die("bind/listen");
    listeners[i] = fd;
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
  }
  long total = count * port_count, received = 0, per_port[MAX_PORTS] = {0}, duplicates = 0;
  long long *latency = malloc(sizeof(long long) * (size_t)total);
  long long earliest = 0, last = 0, deadline = realtime_us() + timeout * 1000000LL;
  printf("ready\n");
  fflush(stdout);
  static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  while (received < total) {
    if (realtime_us() > deadline) {
      fprintf(stderr, "webhook_receiver: timed out with %ld of %ld requests\n", received, total);
      return 1;
    }
    struct epoll_event events[64];
    int ready = epoll_wait(epoll, events, 64, 200);
    for (int e = 0; e < ready; e++) {
      uint64_t tag = events[e].data.u64;
      if (tag < (uint64_t)port_count) {
        int fd;
        while ((fd = accept4(listeners[tag], NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct connection *c = calloc(1, sizeof *c);
          c->fd = fd;
          c->port_index = (int)tag;
          struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t)(uintptr_t)c};
          epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
        }
        continue;
      }
      struct connection *c = (struct connection *)(uintptr_t)tag;
      ssize_t n = read(c->fd, c->buffer + c->used, BUFFER - c->used - 1);
      if (n <= 0) {
        if (n < 0 && errno == EAGAIN) continue;
        close(c->fd);
        free(c);
        continue;
      }
      c->used += (size_t)n;
      for (;;) { /* every complete request in the buffer */
        c->buffer[c->used] = 0;
        char *end = strstr(c->buffer, "\r\n\r\n");
        if (!end) break;
        char *length = strcasestr(c->buffer, "\r\ncontent-length:");
        size_t body_length = length && length < end ? (size_t)atol(length + 17) : 0;
        size_t size = (size_t)(end + 4 - c->buffer) + body_length;
        if (size > c->used) break;
        long long now = realtime_us(), published = 0;
        char *body = end + 4, saved = body[body_length];
        body[body_length] = 0;
        /* The event's own id: Warren sends keys sorted, so `data` (which has an id of
           its own) comes first and the event's id is the last one. */
        char *id = NULL;
        for (char *at = strstr(body, "\"id\":\""); at; at = strstr(at + 1, "\"id\":\"")) id = at;
        if (id) {
          char *close_quote = strchr(id + 6, '"');
          if (close_quote) {
            *close_quote = 0;
            char *dash = strrchr(id + 6, '-');
            published = dash ? atoll(dash + 1) : 0;
            *close_quote = '"';
          }
        }
        body[body_length] = saved;
        if (write(c->fd, answer, sizeof answer - 1) < 0) break;
        if (per_port[c->port_index] < count && received < total) {
          latency[received++] = published ? now - published : 0;
          if (trace) fprintf(trace, "%lld %lld %d\n", published, published ? now - published : 0, ports[c->port_index]);
          per_port[c->port_index]++;
          if (published && (!earliest || published < earliest)) earliest = published;
          last = now;
        } else {
          duplicates++;
        }
        memmove(c->buffer, c->buffer + size, c->used - size);
        c->used -= size;
      }
    }
  }
  if (trace) fclose(trace);
  qsort(latency, (size_t)total, sizeof *latency, compare_ll);
  printf("deliveries_per_sec=%.1f p50_ms=%.2f p99_ms=%.2f duplicates=%ld\n", (double)total / ((double)(last - earliest) / 1e6),
         (double)latency[total / 2] / 1000, (double)latency[total * 99 / 100] / 1000, duplicates);
  return 0;
}
