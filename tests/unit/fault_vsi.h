// fault_vsi.h — /vsipgpfault/, a GDAL virtual filesystem for tests whose n-th
// read fails (SQLite's fault-injecting VFS, for GDAL). "/vsipgpfault/<path>"
// is <path> (any path GDAL can open, /vsimem/ included) read through it; every
// read of any file under the prefix counts, whoever makes it (pgp, GDAL's
// drivers, the warper, OGR), so a source fails wherever its bytes are needed.
// Read-only. Thread-safe.
#pragma once

#include <atomic>
#include <cstring>

#include "cpl_error.h"
#include "cpl_vsi.h"

namespace pgp_test {

class FaultVsi
{
  public:
    static constexpr const char *kPrefix = "/vsipgpfault/";

    // Installs the handler once per process.
    static void Install()
    {
        static const bool installed = [] {
            VSIFilesystemPluginCallbacksStruct *cb = VSIAllocFilesystemPluginCallbacksStruct();
            cb->stat = Stat;
            cb->read_dir = ReadDir;
            cb->open = Open;
            cb->tell = Tell;
            cb->seek = Seek;
            cb->read = Read;
            cb->eof = Eof;
            cb->close = Close;
            // nBufferSize = nCacheSize = 0: every read reaches Read.
            const bool ok = VSIInstallPluginHandler(kPrefix, cb) == 0;
            VSIFreeFilesystemPluginCallbacksStruct(cb);
            return ok;
        }();
        (void)installed;
    }

    // The n-th read from now fails once (n >= 1); 0 turns it off.
    static void FailReadAfter(long n) { Countdown().store(n > 0 ? n : 0); }
    static long InjectedFailures() { return Injected().load(); }

  private:
    static std::atomic<long> &Countdown()
    {
        static std::atomic<long> countdown{0};
        return countdown;
    }
    static std::atomic<long> &Injected()
    {
        static std::atomic<long> injected{0};
        return injected;
    }
    // As pgp_alloc's countdown: of two threads racing past 1, one fails.
    static bool Inject()
    {
        if (Countdown().load(std::memory_order_relaxed) <= 0 || Countdown().fetch_sub(1) != 1)
            return false;
        Injected()++;
        return true;
    }
    static const char *Underlying(const char *name)
    {
        return std::strncmp(name, kPrefix, std::strlen(kPrefix)) == 0
                   ? name + std::strlen(kPrefix)
                   : name;
    }

    static int Stat(void *, const char *name, VSIStatBufL *buf, int flags)
    {
        return VSIStatExL(Underlying(name), buf, flags);
    }
    static char **ReadDir(void *, const char *name, int max_files)
    {
        return VSIReadDirEx(Underlying(name), max_files);
    }
    static void *Open(void *, const char *name, const char *access)
    {
        if (std::strchr(access, 'w') != nullptr || std::strchr(access, 'a') != nullptr ||
            std::strchr(access, '+') != nullptr)
            return nullptr;
        return VSIFOpenL(Underlying(name), access);
    }
    static vsi_l_offset Tell(void *file) { return VSIFTellL(static_cast<VSILFILE *>(file)); }
    static int Seek(void *file, vsi_l_offset offset, int whence)
    {
        return VSIFSeekL(static_cast<VSILFILE *>(file), offset, whence);
    }
    static size_t Read(void *file, void *buffer, size_t size, size_t count)
    {
        if (Inject()) // as a failing disk: a short read, no message of its own
            return 0;
        return VSIFReadL(buffer, size, count, static_cast<VSILFILE *>(file));
    }
    static int Eof(void *file) { return VSIFEofL(static_cast<VSILFILE *>(file)); }
    static int Close(void *file) { return VSIFCloseL(static_cast<VSILFILE *>(file)); }
};

} // namespace pgp_test
