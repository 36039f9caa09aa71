// A stand-in for the part of Coyote v2's cThread API that nnfab's host code uses, written
// for nnfab's tests: it lets g++ check the host code's calls. A "transfer" copies the
// source buffer to the destination (a loop-back vFPGA).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace coyote {
enum class CoyoteAlloc { REG, THP, HPF };
enum class CoyoteOper { LOCAL_READ, LOCAL_WRITE, LOCAL_TRANSFER };
struct CoyoteAllocArgs {
  CoyoteAlloc alloc;
  uint32_t size;
};
struct localSg {
  void* src_addr;
  uint32_t src_len;
  void* dst_addr;
  uint32_t dst_len;
};
struct sgEntry {
  localSg local;
};
template <class T>
class cThread {
 public:
  cThread(int vfid, int pid, int device) { (void)vfid, (void)pid, (void)device; }
  void* getMem(CoyoteAllocArgs args) { return std::calloc(args.size, 1); }
  void freeMem(void* p) { std::free(p); }
  void invoke(CoyoteOper, sgEntry* sg) {
    std::memcpy(sg->local.dst_addr, sg->local.src_addr,
                sg->local.src_len < sg->local.dst_len ? sg->local.src_len : sg->local.dst_len);
    done_ = 1;
  }
  int checkCompleted(CoyoteOper) const { return done_; }
  void clearCompleted() { done_ = 0; }

 private:
  int done_ = 0;
};
}  // namespace coyote
