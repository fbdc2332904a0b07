/*
 * codec.c - JPEG decode and encode in memory (libjpeg), and whole-file
 * reads. See codec.h.
 *
 * libjpeg reports fatal errors through error_exit, which must not return:
 * it longjmps back to the call that started the work, which then cleans
 * up. Warnings (corrupt segments, data cut short) are counted and turned
 * into errors once the picture is done.
 */
#include "codec.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

struct codec_err {
    struct jpeg_error_mgr mgr; /* first: libjpeg sees only this */
    jmp_buf back;
    int warnings;
    char msg[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo)
{
    struct codec_err *e = (struct codec_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->back, 1);
}

/* Level -1 is a warning; higher levels are trace messages, ignored. */
static void on_message(j_common_ptr cinfo, int level)
{
    struct codec_err *e = (struct codec_err *)cinfo->err;
    if (level < 0 && e->warnings++ == 0)
        (*cinfo->err->format_message)(cinfo, e->msg);
}

static struct jpeg_error_mgr *err_init(struct codec_err *e)
{
    memset(e, 0, sizeof *e);
    struct jpeg_error_mgr *m = jpeg_std_error(&e->mgr);
    m->error_exit = on_error;
    m->emit_message = on_message;
    return m;
}

int codec_decode(const unsigned char *buf, size_t len, struct rgb8 *out,
                 char *err, size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    struct codec_err e;
    /* Changed after setjmp and read after longjmp: volatile. */
    unsigned char *volatile px = NULL;

    memset(out, 0, sizeof *out);
    if (len == 0 || len > (size_t)0x7fffffff) {
        snprintf(err, errlen, "not a JPEG: %zu bytes", len);
        return -1;
    }
    cinfo.err = err_init(&e);
    if (setjmp(e.back)) {
        snprintf(err, errlen, "bad JPEG: %s", e.msg);
        jpeg_destroy_decompress(&cinfo);
        free(px);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width > CODEC_MAX_SIDE ||
        cinfo.image_height > CODEC_MAX_SIDE) {
        snprintf(err, errlen, "JPEG of %ux%u is larger than %dx%d",
                 cinfo.image_width, cinfo.image_height, CODEC_MAX_SIDE,
                 CODEC_MAX_SIDE);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * 3;
    px = malloc(stride * cinfo.output_height);
    if (px == NULL) {
        snprintf(err, errlen, "out of memory for %ux%u pixels",
                 cinfo.output_width, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (e.warnings > 0) {
        snprintf(err, errlen, "corrupt or truncated JPEG: %s", e.msg);
        free(px);
        return -1;
    }
    out->w = (int)cinfo.output_width;
    out->h = (int)cinfo.output_height;
    out->px = px;
    return 0;
}

int codec_encode(const struct rgb8 *img, int quality, unsigned char **out,
                 size_t *outlen, char *err, size_t errlen)
{
    struct jpeg_compress_struct cinfo;
    struct codec_err e;
    unsigned char *volatile buf = NULL;
    unsigned long len = 0;

    cinfo.err = err_init(&e);
    if (setjmp(e.back)) {
        snprintf(err, errlen, "JPEG encoding failed: %s", e.msg);
        jpeg_destroy_compress(&cinfo);
        free(buf);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    /* libjpeg grows the buffer with malloc and stores it through here. */
    unsigned char *dst = NULL;
    jpeg_mem_dest(&cinfo, &dst, &len);
    cinfo.image_width = (JDIMENSION)img->w;
    cinfo.image_height = (JDIMENSION)img->h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)img->w * 3;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = img->px + stride * cinfo.next_scanline;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    buf = dst;
    jpeg_destroy_compress(&cinfo);
    *out = buf;
    *outlen = len;
    return 0;
}

void codec_free(struct rgb8 *img)
{
    free(img->px);
    img->px = NULL;
    img->w = img->h = 0;
}

int codec_read_file(const char *path, size_t max, unsigned char **out,
                    size_t *outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 64 * 1024, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf != NULL) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap || ferror(f))
            break;
        if (cap >= max + 1) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            goto fail;
        }
        size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
        unsigned char *nbuf = realloc(buf, ncap);
        if (nbuf == NULL) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto fail;
        }
        buf = nbuf;
        cap = ncap;
    }
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
    if (len > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        goto fail;
    }
    fclose(f);
    *out = buf;
    *outlen = len;
    return 0;
fail:
    free(buf);
    fclose(f);
    return -1;
}
