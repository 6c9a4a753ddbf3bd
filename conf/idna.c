#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "conf/idna.h"
#include "conf/util.h"

bool
idna_is_utf8(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

char *
idna_to_alabel(const char *domain, const char **reason)
{
	char *ascii = NULL, *norm;
	int rc;

	if (strlen(domain) > IDNA_INPUT_MAX) {
		*reason = "domain name too long";
		return NULL;
	}
	if (!idna_is_utf8(domain)) {
		if ((norm = domain_normalize(domain)) == NULL)
			*reason = "not a valid domain name";
		return norm;
	}
	rc = idn2_to_ascii_8z(domain, &ascii, IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		/* libidn2's reasons are static and precise ("string contains a
		 * disallowed character", "string has forbidden bi-directional
		 * properties", ...). */
		*reason = idn2_strerror(rc);
		return NULL;
	}
	/* The A-label form must also be a name we can look up (label and
	 * name lengths, no empty label). */
	norm = domain_normalize(ascii);
	idn2_free(ascii);
	if (norm == NULL)
		*reason = "A-label form is not a valid domain name (too long, or an empty label)";
	return norm;
}
