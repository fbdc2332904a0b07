/*
 * codec.h - JPEG in memory, both ways, with libjpeg.
 *
 * Frames travel through the workflow as 8-bit interleaved RGB, the way a
 * camera or a video decoder hands them over; the network's float layout
 * is made from them in the preprocess stage. Corrupt or truncated input
 * is an error, never a grey picture: libjpeg's recoverable warnings
 * ("premature end of data") count as failures here.
 */
#ifndef DETECT_CODEC_H
#define DETECT_CODEC_H

#include <stddef.h>

#define CODEC_MAX_SIDE 8192 /* larger pictures are refused, not decoded */

struct rgb8 {
    int w, h;
    unsigned char *px; /* w * h * 3 bytes, row by row; malloc'd */
};

/*
 * codec_decode - decode the JPEG in @buf (@len bytes) into @out.
 * Returns 0, or -1 with a one-line reason in @err.
 */
int codec_decode(const unsigned char *buf, size_t len, struct rgb8 *out,
                 char *err, size_t errlen);

/*
 * codec_encode - encode @img as a JPEG of @quality (1..100) into a malloc'd
 * buffer: *@out, *@outlen bytes (free with free()).
 * Returns 0, or -1 with a one-line reason in @err.
 */
int codec_encode(const struct rgb8 *img, int quality, unsigned char **out,
                 size_t *outlen, char *err, size_t errlen);

/* codec_free - release @img's pixels; safe on a zeroed struct. */
void codec_free(struct rgb8 *img);

/*
 * codec_read_file - read the whole of @path (at most @max bytes) into a
 * malloc'd buffer. Returns 0, or -1 with a reason in @err.
 */
int codec_read_file(const char *path, size_t max, unsigned char **out,
                    size_t *outlen, char *err, size_t errlen);

#endif
