/*
 * npz.c - reads NumPy .npz archives (a zip of NAME.npy entries) and .npy files.
 *
 * The zip is walked through its central directory, found from the end of
 * central directory record; the central directory is authoritative for
 * sizes and CRCs (numpy's savez writes zip64 placeholders in local headers,
 * which are therefore tolerated there, while real zip64 archives are
 * rejected). Entries are stored or deflated (raw inflate); every offset and
 * size is checked against the buffer before use, and each entry's CRC32 and
 * length are verified. The .npy header is parsed strictly: exactly the keys
 * descr, fortran_order and shape, descr '<f4', fortran_order False.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <zlib.h>

#include "convert.h"

#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP_LOCAL_LEN 30u
#define ZIP_CENTRAL_LEN 46u
#define ZIP_EOCD_LEN 22u
#define ZIP64_LOCATOR_LEN 20u

/* Deflate cannot expand data by more than about 1032:1, so a larger claimed
 * size is a lie; checking it bounds every allocation by the input size. */
#define DEFLATE_MAX_RATIO 1032u
#define ENTRY_MAX_BYTES ((uint64_t)1 << 30)

static uint16_t rd16(const unsigned char *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* ===================================================================== *
 * .npy
 * ===================================================================== */

typedef struct npy_cursor {
    const char *p;
    const char *end;
} npy_cursor;

static void npy_skip_space(npy_cursor *c) {
    while (c->p < c->end && *c->p == ' ')
        c->p++;
}

static int npy_expect(npy_cursor *c, char ch) {
    npy_skip_space(c);
    if (c->p >= c->end || *c->p != ch)
        return -1;
    c->p++;
    return 0;
}

/* A Python string literal without escapes, quoted with ' or ". */
static int npy_string(npy_cursor *c, char *out, size_t size) {
    npy_skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n' || n + 1 >= size)
            return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    out[n] = '\0';
    return 0;
}

static int npy_word(npy_cursor *c, const char *word) {
    size_t n = strlen(word);
    npy_skip_space(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

/* (), (n,), (n, m), (n, m,) ... of decimal integers. */
static int npy_shape(npy_cursor *c, uint32_t *ndim, uint64_t *shape) {
    if (npy_expect(c, '(') < 0)
        return -1;
    *ndim = 0;
    npy_skip_space(c);
    if (c->p < c->end && *c->p == ')') {
        c->p++;
        return 0;
    }
    for (;;) {
        npy_skip_space(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return -1;
        uint64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            v = v * 10 + (uint64_t)(*c->p - '0');
            if (v > CV_MAX_ELEMENTS)
                return -1;
            c->p++;
        }
        if (*ndim == CV_MAX_NDIM)
            return -1;
        shape[(*ndim)++] = v;
        npy_skip_space(c);
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            return *ndim == 1 ? -1 : 0; /* "(n)" is not a tuple */
        }
        if (npy_expect(c, ',') < 0)
            return -1;
        npy_skip_space(c);
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            return 0;
        }
    }
}

int cv_npy_parse(const unsigned char *buf, size_t len, const char *name, cv_tensors *out,
                 cv_err *e) {
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (len < 10 || memcmp(buf, magic, sizeof magic) != 0)
        return cv_fail(e, "%s: not a .npy file (bad magic)", name);
    unsigned major = buf[6];
    unsigned minor = buf[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return cv_fail(e, "%s: unsupported .npy version %u.%u", name, major, minor);
    size_t start = major == 1 ? 10 : 12;
    if (len < start)
        return cv_fail(e, "%s: .npy header is truncated", name);
    uint64_t hlen = major == 1 ? rd16(buf + 8) : rd32(buf + 8);
    if (hlen > len - start)
        return cv_fail(e, "%s: .npy header length %llu runs past the end (%zu bytes)", name,
                       (unsigned long long)hlen, len);

    npy_cursor c = {(const char *)buf + start, (const char *)buf + start + hlen};
    /* The header ends with '\n' after padding spaces. */
    if (hlen == 0 || c.end[-1] != '\n')
        return cv_fail(e, "%s: .npy header does not end with a newline", name);
    c.end--;
    for (const char *q = c.p; q < c.end; q++)
        if (*q == '\0' || *q == '\n')
            return cv_fail(e, "%s: .npy header holds a control character", name);

    char descr[16] = "";
    int fortran = -1;
    uint32_t ndim = 0;
    uint64_t shape[CV_MAX_NDIM];
    int seen_descr = 0;
    int seen_shape = 0;
    if (npy_expect(&c, '{') < 0)
        return cv_fail(e, "%s: .npy header is not a dict", name);
    for (;;) {
        npy_skip_space(&c);
        if (c.p < c.end && *c.p == '}') {
            c.p++;
            break;
        }
        char key[32];
        if (npy_string(&c, key, sizeof key) < 0 || npy_expect(&c, ':') < 0)
            return cv_fail(e, "%s: .npy header: malformed key", name);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            if (npy_string(&c, descr, sizeof descr) < 0)
                return cv_fail(e, "%s: .npy header: bad 'descr'", name);
            seen_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && fortran < 0) {
            if (npy_word(&c, "False") == 0)
                fortran = 0;
            else if (npy_word(&c, "True") == 0)
                fortran = 1;
            else
                return cv_fail(e, "%s: .npy header: bad 'fortran_order'", name);
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            if (npy_shape(&c, &ndim, shape) < 0)
                return cv_fail(e, "%s: .npy header: bad 'shape'", name);
            seen_shape = 1;
        } else {
            return cv_fail(e, "%s: .npy header: unexpected or repeated key '%s'", name, key);
        }
        npy_skip_space(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (npy_expect(&c, '}') < 0)
            return cv_fail(e, "%s: .npy header: expected ',' or '}'", name);
        break;
    }
    npy_skip_space(&c);
    if (c.p != c.end)
        return cv_fail(e, "%s: .npy header: text after the dict", name);
    if (!seen_descr || fortran < 0 || !seen_shape)
        return cv_fail(e, "%s: .npy header lacks '%s'", name,
                       !seen_descr ? "descr" : fortran < 0 ? "fortran_order" : "shape");
    if (strcmp(descr, "<f4") != 0)
        return cv_fail(e, "%s: dtype '%s', expected '<f4' (float32)", name, descr);
    if (fortran)
        return cv_fail(e, "%s: fortran_order is True, expected C order", name);

    size_t count;
    char shp[160];
    cv_shape_str(ndim, shape, shp, sizeof shp);
    if (cv_shape_count(ndim, shape, CV_MAX_ELEMENTS, &count) < 0)
        return cv_fail(e, "%s: shape %s is too large", name, shp);
    size_t data_off = start + (size_t)hlen;
    size_t have = len - data_off;
    if (have != count * 4)
        return cv_fail(e, "%s: shape %s needs %zu data bytes, found %zu", name, shp,
                       count * 4, have);

    float *data = NULL;
    if (count > 0) {
        data = malloc(count * sizeof *data);
        if (data == NULL)
            return cv_fail(e, "out of memory");
        const unsigned char *src = buf + data_off;
        for (size_t i = 0; i < count; i++) {
            uint32_t bits = rd32(src + 4 * i);
            memcpy(&data[i], &bits, sizeof bits);
        }
    }
    char *tname = strdup(name);
    if (tname == NULL) {
        free(data);
        return cv_fail(e, "out of memory");
    }
    return cv_tensors_add(out, tname, ndim, shape, count, data, e);
}

/* ===================================================================== *
 * .zip
 * ===================================================================== */

typedef struct zip_entry {
    uint16_t flags, method, name_len;
    uint32_t crc, csize, usize, local_off;
    const unsigned char *name;
} zip_entry;

static int find_eocd(const unsigned char *buf, size_t len, size_t *pos) {
    if (len < ZIP_EOCD_LEN)
        return -1;
    size_t lo = len - ZIP_EOCD_LEN > 0xffff ? len - ZIP_EOCD_LEN - 0xffff : 0;
    for (size_t p = len - ZIP_EOCD_LEN + 1; p-- > lo;) {
        /* The comment must run exactly to the end of the file. */
        if (rd32(buf + p) == ZIP_EOCD_SIG && p + ZIP_EOCD_LEN + rd16(buf + p + 20) == len) {
            *pos = p;
            return 0;
        }
    }
    return -1;
}

/* Decodes one entry's bytes into a fresh buffer (stored: a view). */
/* Entries must lie one after the other in [min_off, max_end): no entry may
 * share bytes with another or with the central directory, so the total
 * decoded size stays bounded by the input size. */
static int entry_bytes(const unsigned char *buf, size_t min_off, size_t max_end,
                       const zip_entry *z, const char *ename, const unsigned char **data,
                       unsigned char **owned, size_t *data_end, cv_err *e) {
    size_t len = max_end;
    *owned = NULL;
    if (z->local_off < min_off)
        return cv_fail(e, "%s: local header at offset %u overlaps the previous entry", ename,
                       z->local_off);
    if (z->local_off > len || len - z->local_off < ZIP_LOCAL_LEN)
        return cv_fail(e, "%s: local header offset %u is past the entry area", ename,
                       z->local_off);
    const unsigned char *lh = buf + z->local_off;
    if (rd32(lh) != ZIP_LOCAL_SIG)
        return cv_fail(e, "%s: bad local header signature at offset %u", ename, z->local_off);
    uint16_t lflags = rd16(lh + 6);
    uint16_t lmethod = rd16(lh + 8);
    uint32_t lcrc = rd32(lh + 14);
    uint32_t lcsize = rd32(lh + 18);
    uint32_t lusize = rd32(lh + 22);
    uint16_t lname = rd16(lh + 26);
    uint16_t lextra = rd16(lh + 28);
    if (lmethod != z->method || lname != z->name_len ||
        (size_t)(len - z->local_off - ZIP_LOCAL_LEN) < lname ||
        memcmp(lh + ZIP_LOCAL_LEN, z->name, lname) != 0)
        return cv_fail(e, "%s: local header disagrees with the central directory", ename);
    /* Sizes in the local header: equal, zip64 placeholders (numpy), or
     * zero with a data descriptor following the data. */
    int placeholder = lcsize == 0xffffffffu && lusize == 0xffffffffu;
    int descriptor = (lflags & 8) && lcrc == 0 && lcsize == 0 && lusize == 0;
    if (!placeholder && !descriptor &&
        (lcsize != z->csize || lusize != z->usize || lcrc != z->crc))
        return cv_fail(e, "%s: local header sizes or CRC disagree with the central directory",
                       ename);
    uint64_t off = (uint64_t)z->local_off + ZIP_LOCAL_LEN + lname + lextra;
    if (off > len || z->csize > len - off)
        return cv_fail(e, "%s: data (%u bytes at offset %llu) runs into the central directory",
                       ename, z->csize, (unsigned long long)off);
    const unsigned char *src = buf + off;
    *data_end = (size_t)off + z->csize;

    if (z->method == 0) {
        if (z->csize != z->usize)
            return cv_fail(e, "%s: stored entry with compressed size %u != size %u", ename,
                           z->csize, z->usize);
        *data = src;
    } else {
        if (z->usize > ENTRY_MAX_BYTES ||
            (uint64_t)z->usize > (uint64_t)z->csize * DEFLATE_MAX_RATIO + 64)
            return cv_fail(e, "%s: implausible uncompressed size %u for %u compressed bytes",
                           ename, z->usize, z->csize);
        unsigned char *dst = malloc(z->usize ? z->usize : 1);
        if (dst == NULL)
            return cv_fail(e, "out of memory");
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
            free(dst);
            return cv_fail(e, "out of memory (zlib)");
        }
        zs.next_in = src;
        zs.avail_in = z->csize;
        zs.next_out = dst;
        zs.avail_out = z->usize;
        int rc = inflate(&zs, Z_FINISH);
        uLong produced = zs.total_out;
        inflateEnd(&zs);
        if (rc != Z_STREAM_END || produced != z->usize) {
            free(dst);
            if (rc == Z_STREAM_END || rc == Z_BUF_ERROR)
                return cv_fail(e, "%s: inflated size does not match the stored size %u",
                               ename, z->usize);
            return cv_fail(e, "%s: corrupt deflate data", ename);
        }
        *owned = dst;
        *data = dst;
    }
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), *data, z->usize);
    if (crc != z->crc) {
        free(*owned);
        *owned = NULL;
        return cv_fail(e, "%s: CRC mismatch (stored 0x%08x, computed 0x%08x)", ename, z->crc,
                       crc);
    }
    return 0;
}

int cv_npz_read(const unsigned char *buf, size_t len, cv_tensors *out, cv_err *e) {
    size_t eocd;
    if (len >= 4 && rd32(buf) != ZIP_LOCAL_SIG && rd32(buf) != ZIP_EOCD_SIG)
        return cv_fail(e, "not a zip archive (bad signature)");
    if (find_eocd(buf, len, &eocd) < 0)
        return cv_fail(e, "not a zip archive (no end of central directory record)");
    const unsigned char *r = buf + eocd;
    uint16_t disk = rd16(r + 4);
    uint16_t cd_disk = rd16(r + 6);
    uint16_t n_disk = rd16(r + 8);
    uint16_t n_total = rd16(r + 10);
    uint32_t cd_size = rd32(r + 12);
    uint32_t cd_off = rd32(r + 16);
    if ((eocd >= ZIP64_LOCATOR_LEN && rd32(buf + eocd - ZIP64_LOCATOR_LEN) == ZIP64_LOCATOR_SIG) ||
        n_total == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu)
        return cv_fail(e, "zip64 archives are not supported (keep the archive under 4 GiB)");
    if (disk != 0 || cd_disk != 0 || n_disk != n_total)
        return cv_fail(e, "multi-disk zip archives are not supported");
    if (cd_off > eocd || cd_size > eocd - cd_off)
        return cv_fail(e, "central directory (%u bytes at offset %u) is out of bounds",
                       cd_size, cd_off);
    if (n_total == 0)
        return cv_fail(e, "the archive holds no tensors");

    size_t p = cd_off;
    size_t cd_end = (size_t)cd_off + cd_size;
    size_t next_free = 0;
    for (unsigned i = 0; i < n_total; i++) {
        if (cd_end - p < ZIP_CENTRAL_LEN || rd32(buf + p) != ZIP_CENTRAL_SIG)
            return cv_fail(e, "central directory entry %u is malformed", i);
        const unsigned char *c = buf + p;
        zip_entry z;
        z.flags = rd16(c + 8);
        z.method = rd16(c + 10);
        z.crc = rd32(c + 16);
        z.csize = rd32(c + 20);
        z.usize = rd32(c + 24);
        z.name_len = rd16(c + 28);
        uint16_t extra_len = rd16(c + 30);
        uint16_t comment_len = rd16(c + 32);
        uint16_t start_disk = rd16(c + 34);
        z.local_off = rd32(c + 42);
        size_t var = (size_t)z.name_len + extra_len + comment_len;
        if (cd_end - p - ZIP_CENTRAL_LEN < var)
            return cv_fail(e, "central directory entry %u runs past the directory", i);
        z.name = c + ZIP_CENTRAL_LEN;
        p += ZIP_CENTRAL_LEN + var;

        char ename[256];
        size_t nl = z.name_len < sizeof ename - 1 ? z.name_len : sizeof ename - 1;
        for (size_t j = 0; j < nl; j++)
            ename[j] = (z.name[j] >= 0x20 && z.name[j] < 0x7f) ? (char)z.name[j] : '?';
        ename[nl] = '\0';
        if (z.name_len != nl || memchr(z.name, '\0', z.name_len) != NULL)
            return cv_fail(e, "entry %u: bad name '%s'", i, ename);
        if (z.csize == 0xffffffffu || z.usize == 0xffffffffu || z.local_off == 0xffffffffu)
            return cv_fail(e, "%s: zip64 entries are not supported", ename);
        if (start_disk != 0)
            return cv_fail(e, "%s: multi-disk zip archives are not supported", ename);
        if (z.flags & 1)
            return cv_fail(e, "%s: encrypted entries are not supported", ename);
        if (z.method != 0 && z.method != 8)
            return cv_fail(e, "%s: compression method %u is not supported (stored or deflated only)",
                           ename, z.method);
        if (nl < 5 || strcmp(ename + nl - 4, ".npy") != 0)
            return cv_fail(e, "%s: unexpected entry (every entry must be NAME.npy)", ename);

        const unsigned char *data = NULL;
        unsigned char *owned = NULL;
        if (entry_bytes(buf, next_free, cd_off, &z, ename, &data, &owned, &next_free, e) < 0)
            return -1;
        ename[nl - 4] = '\0'; /* the tensor name */
        int rc = cv_npy_parse(data, z.usize, ename, out, e);
        free(owned);
        if (rc < 0)
            return -1;
    }
    if (p != cd_end)
        return cv_fail(e, "central directory size %u does not match its %u entries", cd_size,
                       (unsigned)n_total);
    return 0;
}
