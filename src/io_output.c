/* io_output.c: the check every offline writer (convert, quantize) makes
 * before it creates anything: the output path must not name a file that
 * writing or renaming over would destroy (see io.h, "output files").
 *
 * Owns: only the check. Does not own: the temporary file and the rename
 * (gguf_write.c), nor the list of inputs (each tool knows what it reads).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "io.h"
#include "util.h"

static const char *io_node_kind(mode_t m)
{
	return S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device" :
	       S_ISBLK(m) ? "a block device" : S_ISFIFO(m) ? "a FIFO" :
	       S_ISSOCK(m) ? "a socket" : "not a regular file";
}

int io_output_check(const char *out_path, const char *const *inputs, size_t n_inputs,
		    struct fm_error *err)
{
	struct stat so, si;
	if (!out_path || !*out_path)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "no output path");
	if (stat(out_path, &so) < 0)
		return 0; /* no output yet (a dangling symlink is replaced, not followed) */
	if (!S_ISREG(so.st_mode))
		return fm_err(err, FM_EINVAL, out_path, FM_NO_OFFSET,
			      "the output exists and is not a regular file (%s); refusing to "
			      "replace it", io_node_kind(so.st_mode));
	for (size_t i = 0; i < n_inputs; i++) {
		if (!inputs[i] || stat(inputs[i], &si) < 0)
			continue;
		if (si.st_dev == so.st_dev && si.st_ino == so.st_ino)
			return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
				      "the output '%s' is the input file '%s' (the same file, by "
				      "device and inode); refusing to overwrite an input",
				      out_path, inputs[i]);
	}
	return 0;
}
