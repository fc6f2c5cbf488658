// Core-speed gauge (logvar lane, 6 December): pinned to a core, every 200 ms it times a fixed
// compute loop (~0.45 ms), an L2-sized pointer walk (~0.37 ms) and a 16 MiB pointer walk (~1.2 ms),
// and prints each second the fastest of its 5 samples (µs): if the core itself slows (host,
// neighbour, frequency) these rise. It takes ~1 % of the core, alike for both bench servers.
// Build and run: gcc -O2 -o /tmp/gauge bench/core-speed-gauge.c && taskset -c 0 /tmp/gauge
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
int main(void){
  static uint64_t buf[32768]; for(int i=0;i<32768;i++) buf[i]=(i*2654435761u)%32768;
  volatile uint64_t sink=0;
  size_t N=4u<<20; uint32_t *big=malloc(N*4); // 16 MiB random cycle (beyond L2; L3/DRAM)
  for(size_t i=0;i<N;i++) big[i]=i; for(size_t i=N-1;i>0;i--){size_t k=(size_t)(((uint64_t)rand()<<16 ^ rand())%i); uint32_t t=big[i]; big[i]=big[k]; big[k]=t;}
  for(;;){
    double cmin=1e18, mmin=1e18, dmin=1e18;
    for(int s=0;s<5;s++){
      double t0=now(); uint64_t x=12345; for(int i=0;i<400000;i++) x=x*6364136223846793005ull+1442695040888963407ull; sink+=x;
      double t1=now(); uint64_t j=0; for(int r=0;r<8;r++) for(int i=0;i<32768;i++) j=buf[j]; sink+=j;
      double t2=now(); uint32_t q=0; for(int i=0;i<5000;i++) q=big[q]; sink+=q;
      double t3=now(); if(t1-t0<cmin)cmin=t1-t0; if(t2-t1<mmin)mmin=t2-t1; if(t3-t2<dmin)dmin=t3-t2;
      usleep(200000);
    }
    time_t tt=time(NULL); struct tm *g=gmtime(&tt);
    printf("%02d:%02d:%02d compute %.0f l2 %.0f dram %.0f\n",g->tm_hour,g->tm_min,g->tm_sec,cmin,mmin,dmin); fflush(stdout);
  }
}
