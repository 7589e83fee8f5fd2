/* The names of a response's attachments (an OpenRosa submission's file parts, as the instance's
 * answers name them: ODK Collect's "1712345678901.jpg", or the device's own file name from Enketo
 * and ODK Web Forms): one limit and one rule for every layer that takes, stores or serves them
 * (the submission, response_attachments.name, GET /v1/responses/{id}/attachments/{name}). Knows
 * nothing of HTTP. */
#ifndef FV_ATTACHMENT_H
#define FV_ATTACHMENT_H

/* Bytes of UTF-8 in a name: a file name's limit on Android (and ext4). Percent-encoded in a URL
 * path, a name takes at most 3 * FV_ATTACHMENT_NAME_MAX bytes. */
#define FV_ATTACHMENT_NAME_MAX 255

/* NULL when name (a C string, borrowed) may be an attachment's name, else why not (static text
 * starting "an attachment's name "): empty, longer than FV_ATTACHMENT_NAME_MAX bytes, not strict
 * UTF-8 (RFC 3629: what PostgreSQL stores), "." or "..", holding "/" or "\", or a control character (C0,
 * DEL or C1: U+0080 to U+009F). A name with a NUL byte in it never reaches here as a whole: the
 * layers that read names refuse the NUL themselves (fv_multipart.c, fe_framing.c). */
const char *fv_attachment_name_problem(const char *name);

#endif
