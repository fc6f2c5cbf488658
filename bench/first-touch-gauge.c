// First-touch gauge (jsonlog lane, 6 December): maps CHUNKS × 512 MiB of anonymous memory (4 KiB
// pages, no THP) and times, chunk by chunk, the first write to each page (thread CPU µs a page).
// On this VM it read ~2 µs a page for the first ~2 GiB and ~12 µs beyond: guest memory the host
// does not back at the moment (the balloon reports freed pages back to the host within seconds,
// so the same cost comes back after a free). The log writer's copy into new page-cache pages
// (pwritev) pays the same when the page cache grows into such memory: its CPU a second doubled
// for seconds at JSON 100 with nothing else changed. Uses CHUNKS × 512 MiB of RAM while it runs.
// A second argument holds the memory that many seconds before freeing it ("held" is printed
// first): run beside a server, it takes the warm pages so that the log's page cache grows into
// cold ones — `/tmp/first-touch 6 60 &` then writer-thread-probe.ts (the writer's ms a MB ~3.5×).
// Build and run: gcc -O2 -o /tmp/first-touch bench/first-touch-gauge.c && taskset -c 0 /tmp/first-touch 12
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){
  size_t chunks=argc>1?(size_t)atoi(argv[1]):8, chunk=512ul<<20;
  char*p=mmap(0,chunk*chunks,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,-1,0);
  if(p==MAP_FAILED){perror("mmap");return 1;}
  madvise(p,chunk*chunks,MADV_NOHUGEPAGE);
  for(size_t k=0;k<chunks;k++){
    double t0=cpu(); for(size_t i=0;i<chunk;i+=4096) p[k*chunk+i]=1; double t1=cpu();
    printf("chunk %zu (%zu MiB): %.2f µs a page\n",k,(k+1)*512,(t1-t0)*1e6/(chunk/4096)); fflush(stdout);
  }
  if(argc>2){printf("held\n");fflush(stdout);sleep((unsigned)atoi(argv[2]));}
  munmap(p,chunk*chunks); return 0;
}
