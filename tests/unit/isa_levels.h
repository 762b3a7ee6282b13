// Running a test body at every instruction-set level this CPU runs
// (pgp/simd.h): each level is forced in turn, the level in force before is
// restored afterwards.
#ifndef PGP_TESTS_ISA_LEVELS_H
#define PGP_TESTS_ISA_LEVELS_H

#include <vector>

#include "pgp/simd.h"

class ScopedIsa {
  public:
    explicit ScopedIsa(pgp_isa isa) : previous_(pgp_isa_active()) { pgp_isa_force(isa); }
    ~ScopedIsa() { pgp_isa_force(previous_); }
    ScopedIsa(const ScopedIsa &) = delete;
    ScopedIsa &operator=(const ScopedIsa &) = delete;

  private:
    pgp_isa previous_;
};

inline std::vector<pgp_isa> runnable_isas()
{
    std::vector<pgp_isa> levels;
    for (int level = 0; level < PGP_ISA_COUNT; level++)
        if (pgp_isa_supported((pgp_isa)level))
            levels.push_back((pgp_isa)level);
    return levels;
}

#endif
