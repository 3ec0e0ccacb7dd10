/* page.h: the chat page served at GET / (src/server/page.html), embedded at
 * build time by tools/embed.sh into $(O)/gen/page_html.c. */
#ifndef FM_SERVER_PAGE_H
#define FM_SERVER_PAGE_H

extern const char fm_page_html[];     /* the HTML, NUL-terminated */
extern const unsigned fm_page_html_len; /* its length without the NUL */

#endif
