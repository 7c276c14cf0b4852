package dev.kafkaproducer.harness;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/** Just enough JSON writing for one-object-per-line output; no dependency beyond the JDK. */
final class Json {
    private Json() {}

    static StringBuilder string(StringBuilder out, String s) {
        if (s == null) {
            return out.append("null");
        }
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"');
    }

    /**
     * Writes `"name":<utf8 string or null>,"nameB64":<base64 or null>`. The string form is present only when the bytes
     * are valid UTF-8; the base64 form is present whenever the bytes are (so both are null only for a null field).
     */
    static StringBuilder bytes(StringBuilder out, String name, byte[] bytes) {
        string(out, name).append(':');
        string(out, bytes == null ? null : utf8OrNull(bytes)).append(',');
        string(out, name + "B64").append(':');
        return string(out, bytes == null ? null : Base64.getEncoder().encodeToString(bytes));
    }

    /** Strict decoding: malformed input (including encoded surrogates) gives null rather than replacement characters. */
    static String utf8OrNull(byte[] bytes) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(bytes))
                .toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }
}
