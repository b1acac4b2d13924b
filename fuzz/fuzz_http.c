/* fuzz_http: the generation server's parser of request lines and headers
 * (serve/http.h) on arbitrary bytes, with the blank line that ends a head
 * appended half of the time, as the server hands it only complete heads. */
#include "fuzz_common.h"
#include "serve/http.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size == 0) return 0;
    const int close = data[0] & 1;
    char *head = malloc(size + 4);
    if (!head) return 0;
    memcpy(head, data + 1, size - 1);
    size_t n = size - 1;
    if (close) memcpy(head + n, "\r\n\r\n", 4), n += 4;
    struct mt_http_head h;
    char msg[256];
    int status = mt_http_parse_head(head, n, 1 << 20, &h, msg, sizeof msg);
    if (status == 0 && (strlen(h.path) >= sizeof h.path || h.content_length > (1 << 20))) abort();
    free(head);
    return 0;
}
