/*
 * The benchmark's backend (bench/mesh.ts): a single-threaded epoll HTTP/1.1 server that
 * answers every request on a kept-alive connection with a fixed 200 and a short body, and
 * says which backend it is in a header. Small and fast, so that what the benchmark measures
 * is the proxy in front of it, not the backend. Built by the benchmark with gcc.
 *
 *   mesh-backend PORT NAME
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: mesh-backend PORT NAME\n"); return 2; }
  char resp[256];
  int rlen = snprintf(resp, sizeof resp,
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Backend: %s\r\nContent-Type: text/plain\r\n\r\nok\n", argv[2]);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1])); a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) { perror("listen"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls };
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  printf("listening\n"); fflush(stdout);
  struct epoll_event evs[256];
  char buf[16384];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event ce = { .events = EPOLLIN, .data.fd = c };
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) { if (r < 0 && errno == EAGAIN) continue; close(fd); continue; }
      /* One answer per request: count the ends of headers (wrk's GETs carry no body and are
       far smaller than the buffer, so one never straddles two reads in practice). */
      int reqs = 0;
      for (ssize_t j = 3; j < r; j++)
        if (buf[j] == '\n' && buf[j - 1] == '\r' && buf[j - 2] == '\n' && buf[j - 3] == '\r') reqs++;
      for (int k = 0; k < reqs; k++)
        if (write(fd, resp, rlen) < 0) { close(fd); break; }
    }
  }
}
